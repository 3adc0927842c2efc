//! The one document flow of every scoring pipeline (`score`, `eval`, `profile`, `track`).
//!
//! Units read from the inputs (documents or trajectories) are worked on by a backend, several
//! at once where the backend allows ([`for_each_ordered`]), and handed to the pipeline's sink in
//! input order. [`Flow::drive`] owns what every pipeline must do alike, so that a new per-unit stage
//! is a work function and a sink, and the commands cannot drift apart:
//! - a record that could not be read is skipped: counted, and its reason (`file:line: why`)
//!   kept in the run's [`SkipLog`];
//! - the reader's warnings about a unit are logged with its place;
//! - a unit whose work failed is skipped the same way, as `file:line: kind 'id': error`, unless
//!   the failure is fatal (the model or server is gone: skipping would skip everything), which
//!   stops the run with a [`Stopped`] error naming the unit;
//! - units done, tokens and the clock are kept in one [`RunLog`], and a [`Reporter`] is told
//!   after every unit (the command line draws its progress line from it).

use std::fmt::Display;
use std::time::Instant;

use super::eval::{EvalError, EvaluatedTrajectory};
use super::parallel::for_each_ordered;
use super::score::ScoredDocument;
use super::skips::SkipLog;
use crate::data::trajectory::Trajectory;
use crate::data::{Document, RecordError};
use crate::engine::{Backend, EngineError};

/// What a pipeline reads and works on: a document or a trajectory.
pub trait Unit {
    /// The word used in messages: `document`, `trajectory`.
    const KIND: &'static str;
    fn id(&self) -> &str;
    /// The input file (as given or found), or `<stdin>`.
    fn source(&self) -> &str;
    /// 1-based line (or row) in [`Unit::source`]; 0 when the unit is a whole file.
    fn line(&self) -> u64;
    /// Whether the flow may announce the unit's forward pass before working on it, so that a
    /// backend packs short units together ([`crate::engine::pack`]): the unit's work must then
    /// be free of effects other than its result (it runs once more, stopped at its first
    /// forward pass). Documents are; trajectories (long, rendered, scored selectively) are not.
    const PACKABLE: bool = false;
    /// Problems the reader worked around, logged when the unit is worked on.
    fn warnings(&self) -> &[String] {
        &[]
    }
    /// `file:line`, or the file alone for a whole-file unit: where a user finds the unit.
    fn place(&self) -> String {
        match self.line() {
            0 => self.source().to_string(),
            line => format!("{}:{line}", self.source()),
        }
    }
}

impl Unit for Document {
    const KIND: &'static str = "document";
    const PACKABLE: bool = true;
    fn id(&self) -> &str {
        &self.id
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn line(&self) -> u64 {
        self.line
    }
}

impl Unit for Trajectory {
    const KIND: &'static str = "trajectory";
    fn id(&self) -> &str {
        &self.id
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn line(&self) -> u64 {
        self.line
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// A unit tagged with a number of the pipeline's own (e.g. profile's global document index).
impl<U: Unit> Unit for (u64, U) {
    const KIND: &'static str = U::KIND;
    const PACKABLE: bool = U::PACKABLE;
    fn id(&self) -> &str {
        self.1.id()
    }
    fn source(&self) -> &str {
        self.1.source()
    }
    fn line(&self) -> u64 {
        self.1.line()
    }
    fn warnings(&self) -> &[String] {
        self.1.warnings()
    }
}

/// An error of a unit's work that ends the run instead of skipping the unit.
pub trait Fatal {
    fn is_fatal(&self) -> bool;
}

impl Fatal for EngineError {
    fn is_fatal(&self) -> bool {
        EngineError::is_fatal(self)
    }
}

impl Fatal for EvalError {
    fn is_fatal(&self) -> bool {
        EvalError::is_fatal(self)
    }
}

/// The result of a unit's work, as far as the run's throughput is concerned.
pub trait Worked {
    /// Tokens the model processed for the unit (context included).
    fn tokens(&self) -> u64;
}

impl Worked for ScoredDocument {
    fn tokens(&self) -> u64 {
        self.tokens.ids.len() as u64
    }
}

impl Worked for EvaluatedTrajectory {
    fn tokens(&self) -> u64 {
        self.tokens.ids.len() as u64
    }
}

/// What the sink is given for a unit the work function took.
#[derive(Debug)]
pub enum Outcome<R> {
    /// The unit's result (already counted in the [`RunLog`]).
    Done(R),
    /// The unit could not be worked on; the reason (`file:line: kind 'id': error`) is already
    /// counted and logged. Sinks that persist failures (profile's parts) record it.
    Skipped(String),
}

/// A fatal failure: the run stopped at this unit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{place}: {kind} '{id}': {error}; stopped")]
pub struct Stopped {
    pub place: String,
    pub kind: &'static str,
    pub id: String,
    pub error: String,
}

/// The counts and clock of a run.
#[derive(Debug, Clone)]
pub struct RunLog {
    /// Units worked on successfully in this run.
    pub done: u64,
    /// Tokens processed for them.
    pub tokens: u64,
    /// Units an earlier, interrupted run had done (resumable pipelines).
    pub resumed: u64,
    /// Unreadable records and units whose work failed.
    pub skips: SkipLog,
    started: Instant,
}

impl Default for RunLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RunLog {
    /// A log whose clock starts now.
    pub fn new() -> Self {
        Self {
            done: 0,
            tokens: 0,
            resumed: 0,
            skips: SkipLog::default(),
            started: Instant::now(),
        }
    }

    /// Seconds since the log was made.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Tokens per second of wall time so far (0 before any time has passed).
    pub fn tokens_per_second(&self) -> f64 {
        per_second(self.tokens, self.elapsed())
    }
}

/// `count / seconds`, or 0 when no time was measured.
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Told about the run's progress; the command line implements it with a progress line, the
/// library passes `&()` where nobody watches.
pub trait Reporter {
    /// Called after every unit (done or skipped).
    fn update(&self, log: &RunLog);
    /// Called once when the run ends, whether the units ran out or the run stopped (the
    /// command line clears its progress line before printing the summary or the error).
    fn finish(&self, _log: &RunLog) {}
}

impl Reporter for () {
    fn update(&self, _: &RunLog) {}
}

/// One run of the document flow: its [`RunLog`] and who is told of its progress. A pipeline
/// makes one, calls [`Flow::drive`] with its work and its sink, then reads the log.
pub struct Flow<'r> {
    pub log: RunLog,
    reporter: &'r dyn Reporter,
}

impl<'r> Flow<'r> {
    /// A run whose clock starts now.
    pub fn new(reporter: &'r dyn Reporter) -> Self {
        Self {
            log: RunLog::new(),
            reporter,
        }
    }

    /// Runs `work` on every readable unit of `items` and hands the outcomes to `sink` in input
    /// order, keeping the log (see the module docs for the rules); the reporter is told after
    /// every unit, and once more when the run ends, however it ends.
    ///
    /// `work` returns `None` for a unit the run passes over (e.g. not the one `--explain` asks
    /// for): it is neither counted nor given to the sink. An error from `sink` stops the run and
    /// is returned as it is; a fatal work error is returned as a [`Stopped`] converted into the
    /// sink's error type.
    pub fn drive<U, R, E, SE>(
        &mut self,
        backends: &mut [&mut dyn Backend],
        items: impl Iterator<Item = Result<U, RecordError>>,
        work: impl Fn(&mut [&mut dyn Backend], &U) -> Option<Result<R, E>> + Sync,
        mut sink: impl FnMut(&dyn Backend, U, Outcome<R>) -> Result<(), SE>,
    ) -> Result<(), SE>
    where
        U: Unit + Send,
        R: Worked + Send,
        E: Fatal + Display + Send,
        SE: From<Stopped>,
    {
        let (log, reporter) = (&mut self.log, self.reporter);
        let work = |b: &mut [&mut dyn Backend], item: &Result<U, RecordError>| {
            item.as_ref().ok().and_then(|unit| work(b, unit))
        };
        let sink =
            |tracer: &dyn Backend, item: Result<U, RecordError>, result: Option<Result<R, E>>| {
                let unit = match item {
                    Ok(unit) => unit,
                    Err(e) => {
                        log.skips.skip(e.to_string());
                        reporter.update(log);
                        return Ok(());
                    }
                };
                let Some(result) = result else {
                    return Ok(());
                };
                let place = unit.place();
                for w in unit.warnings() {
                    tracing::warn!("{place}: {} '{}': {w}", U::KIND, unit.id());
                }
                let outcome = match result {
                    Ok(r) => {
                        log.done += 1;
                        log.tokens += r.tokens();
                        Outcome::Done(r)
                    }
                    Err(e) if e.is_fatal() => {
                        return Err(SE::from(Stopped {
                            place,
                            kind: U::KIND,
                            id: unit.id().to_string(),
                            error: e.to_string(),
                        }));
                    }
                    Err(e) => {
                        let reason = format!("{place}: {} '{}': {e}", U::KIND, unit.id());
                        log.skips.skip(reason.clone());
                        Outcome::Skipped(reason)
                    }
                };
                sink(tracer, unit, outcome)?;
                reporter.update(log);
                Ok(())
            };
        let result = for_each_ordered(backends, items, work, sink, U::PACKABLE);
        reporter.finish(log);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RecordErrorKind;
    use crate::pipeline::parallel::tests::fake;

    fn doc(id: &str, line: u64, text: &str) -> Document {
        Document {
            id: id.into(),
            text: text.into(),
            source: "in.jsonl".into(),
            line,
            metadata: None,
        }
    }

    fn unreadable(line: u64) -> RecordError {
        RecordError {
            source: "in.jsonl".into(),
            line,
            field: Some("text".into()),
            kind: RecordErrorKind::MissingField,
            message: "no text".into(),
        }
    }

    /// A work error with a chosen fatality.
    #[derive(Debug)]
    struct Failure(bool);
    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(if self.0 { "server gone" } else { "too long" })
        }
    }
    impl Fatal for Failure {
        fn is_fatal(&self) -> bool {
            self.0
        }
    }
    struct Tokens(u64);
    impl Worked for Tokens {
        fn tokens(&self) -> u64 {
            self.0
        }
    }

    /// Work by text: `fail` is a skipped failure, `fatal` a fatal one, `pass` is passed over,
    /// anything else is done with its length as tokens.
    fn work(_: &mut [&mut dyn Backend], d: &Document) -> Option<Result<Tokens, Failure>> {
        match d.text.as_str() {
            "pass" => None,
            "fail" => Some(Err(Failure(false))),
            "fatal" => Some(Err(Failure(true))),
            t => Some(Ok(Tokens(t.len() as u64))),
        }
    }

    #[test]
    fn skips_are_counted_with_their_place_and_the_rest_reaches_the_sink_in_order() {
        for parallel in [1, 3] {
            skips_counted(parallel);
        }
    }

    fn skips_counted(parallel: usize) {
        let mut b = fake(parallel);
        let items = vec![
            Ok(doc("a", 1, "xx")),
            Err(unreadable(2)),
            Ok(doc("c", 3, "fail")),
            Ok(doc("d", 4, "pass")),
            Ok(doc("e", 0, "xyz")),
        ];
        let mut seen = Vec::new();
        let mut flow = Flow::new(&());
        flow.drive(
            &mut [&mut b as &mut dyn Backend],
            items.into_iter(),
            work,
            |_, d: Document, o: Outcome<Tokens>| -> Result<(), Stopped> {
                seen.push(match o {
                    Outcome::Done(t) => format!("{} done {}", d.id, t.0),
                    Outcome::Skipped(why) => format!("{} skipped: {why}", d.id),
                });
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            [
                "a done 2",
                "c skipped: in.jsonl:3: document 'c': too long",
                "e done 3"
            ]
        );
        assert_eq!(
            (flow.log.done, flow.log.tokens, flow.log.skips.count),
            (2, 5, 2)
        );
        assert_eq!(
            flow.log.skips.reasons,
            [
                "in.jsonl:2: field 'text': no text".to_string(),
                "in.jsonl:3: document 'c': too long".to_string()
            ]
        );
    }

    #[test]
    fn a_fatal_failure_stops_the_run_naming_the_unit() {
        let mut b = fake(1);
        let items = vec![
            Ok(doc("a", 1, "xx")),
            Ok(doc("b", 2, "fatal")),
            Ok(doc("c", 3, "yy")),
        ];
        let mut sunk = 0;
        let mut flow = Flow::new(&());
        let err = flow
            .drive(
                &mut [&mut b as &mut dyn Backend],
                items.into_iter(),
                work,
                |_, _: Document, _: Outcome<Tokens>| -> Result<(), Stopped> {
                    sunk += 1;
                    Ok(())
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "in.jsonl:2: document 'b': server gone; stopped"
        );
        assert_eq!(sunk, 1, "nothing after the fatal unit reaches the sink");
        assert_eq!(flow.log.skips.count, 0);
    }

    #[test]
    fn places_name_the_line_unless_the_unit_is_a_whole_file() {
        assert_eq!(doc("a", 7, "t").place(), "in.jsonl:7");
        assert_eq!(doc("a", 0, "t").place(), "in.jsonl");
        assert_eq!((3u64, doc("a", 7, "t")).place(), "in.jsonl:7");
        assert_eq!(per_second(10, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
    }
}
