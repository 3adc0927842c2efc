//! Documents in flight at once, for backends that can serve several (remote servers), with
//! results handed on in input order so that outputs are the same as a sequential run's.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::engine::pack::{Recorder, Request};
use crate::engine::Backend;

/// Runs `work` on every item with the given backends (a main model and maybe a reference), and
/// gives each result to `sink` in input order, with the first backend for looking up token
/// texts.
///
/// When every backend can [`Backend::fork`] and wants more than one document in flight, items
/// are worked on by that many threads, each with its own forks, and at most twice as many are
/// held at once; otherwise everything runs here, one item after another: with `pack`, and a
/// first backend that packs short documents ([`Backend::pack_limits`]), a few items are read
/// ahead and their forward passes announced to the backends first ([`announce`]). `sink` always
/// runs on the calling thread; an error from it stops the run (items in flight are finished and
/// dropped).
pub fn for_each_ordered<T, R, E>(
    backends: &mut [&mut dyn Backend],
    items: impl Iterator<Item = T>,
    work: impl Fn(&mut [&mut dyn Backend], &T) -> R + Sync,
    mut sink: impl FnMut(&dyn Backend, T, R) -> Result<(), E>,
    pack: bool,
) -> Result<(), E>
where
    T: Send,
    R: Send,
{
    let n = backends.iter().map(|b| b.parallelism()).min().unwrap_or(1);
    let forks: Option<Vec<Vec<Box<dyn Backend + Send>>>> = if n > 1 {
        (0..n)
            .map(|_| {
                backends
                    .iter()
                    .map(|b| b.fork())
                    .collect::<Option<Vec<_>>>()
            })
            .collect()
    } else {
        None
    };
    let Some(forks) = forks else {
        let limits = backends.first().and_then(|b| b.pack_limits());
        let Some(limits) = limits.filter(|l| pack && l.is_active()) else {
            for item in items {
                let r = work(backends, &item);
                sink(&*backends[0], item, r)?;
            }
            return Ok(());
        };
        let mut items = items.fuse();
        let result = loop {
            let ahead: Vec<T> = items.by_ref().take(limits.lookahead()).collect();
            if ahead.is_empty() {
                break Ok(());
            }
            announce(backends, &ahead, &work);
            let sunk = ahead.into_iter().try_for_each(|item| {
                let r = work(backends, &item);
                sink(&*backends[0], item, r)
            });
            if sunk.is_err() {
                break sunk;
            }
        };
        for b in backends.iter_mut() {
            b.plan(Vec::new());
        }
        return result;
    };

    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, T)>(n);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<(u64, T, R)>();
    std::thread::scope(|s| {
        for mut own in forks {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let work = &work;
            s.spawn(move || {
                let mut refs: Vec<&mut dyn Backend> = own
                    .iter_mut()
                    .map(|b| b.as_mut() as &mut dyn Backend)
                    .collect();
                loop {
                    let next = job_rx.lock().expect("job queue").recv();
                    let Ok((i, item)) = next else { break };
                    let r = work(&mut refs, &item);
                    if done_tx.send((i, item, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut job_tx = Some(job_tx);
        let mut items = items.fuse();
        let (mut sent, mut next_out) = (0u64, 0u64);
        let mut pending: BTreeMap<u64, (T, R)> = BTreeMap::new();
        let cap = 2 * n as u64;
        let mut outcome = Ok(());
        loop {
            // Keep the workers busy, but never hold more than `cap` items.
            while outcome.is_ok() && sent - next_out < cap {
                match (items.next(), job_tx.as_ref()) {
                    (Some(item), Some(tx)) => {
                        tx.send((sent, item)).expect("workers outlive the queue");
                        sent += 1;
                    }
                    _ => break,
                }
            }
            if outcome.is_err() || sent == next_out {
                // Done, or stopped: let the workers finish what they hold and exit.
                job_tx = None;
            }
            let Ok((i, item, r)) = done_rx.recv() else {
                break;
            };
            pending.insert(i, (item, r));
            while let Some((item, r)) = pending.remove(&next_out) {
                next_out += 1;
                if outcome.is_ok() {
                    outcome = sink(&*backends[0], item, r);
                }
            }
        }
        drop(job_tx);
        outcome
    })
}

/// Tells each backend the forward passes the work on `items` will ask of it ([`Backend::plan`]),
/// found by running the work against [`Recorder`]s, whose answers stop it at its first forward
/// pass (what it returns then is dropped; the work must have no other effect).
fn announce<T, R>(
    backends: &mut [&mut dyn Backend],
    items: &[T],
    work: &impl Fn(&mut [&mut dyn Backend], &T) -> R,
) {
    let mut noted: Vec<Vec<Request>> = vec![Vec::new(); backends.len()];
    for item in items {
        let mut recorders: Vec<Recorder> = backends
            .iter()
            .map(|b| Recorder::new(&**b, b.pack_limits()))
            .collect();
        let mut refs: Vec<&mut dyn Backend> = recorders
            .iter_mut()
            .map(|r| r as &mut dyn Backend)
            .collect();
        drop(work(&mut refs, item));
        drop(refs);
        for (n, r) in noted.iter_mut().zip(recorders) {
            n.extend(r.requests);
        }
    }
    for (b, requests) in backends.iter_mut().zip(noted) {
        b.plan(requests);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::{ChatTemplateSpec, EngineError, ModelInfo, Tokenized, Tokenizer};
    use crate::metrics::PositionStats;
    use std::ops::Range;

    /// A backend that only says how parallel it is; work functions do not call it.
    pub(crate) struct Fake {
        parallel: usize,
        info: ModelInfo,
    }

    fn info() -> ModelInfo {
        ModelInfo {
            path: "fake".into(),
            name: "fake".into(),
            architecture: "fake".into(),
            sha256: String::new(),
            vocab_size: 0,
            train_context: 0,
            add_bos: false,
            precision: String::new(),
            compute: String::new(),
            threads: 1,
        }
    }

    /// The work functions of these tests never tokenize.
    struct NoTokenizer;

    impl Tokenizer for NoTokenizer {
        fn tokenize(&self, _: &str, _: bool) -> Result<Tokenized, EngineError> {
            unreachable!()
        }
        fn chat_template(&self) -> Option<ChatTemplateSpec> {
            None
        }
        fn token_text(&self, _: u32) -> String {
            String::new()
        }
    }

    impl Backend for Fake {
        fn info(&self) -> &ModelInfo {
            &self.info
        }
        fn tokenizer(&self) -> &dyn Tokenizer {
            &NoTokenizer
        }
        fn max_window(&self) -> usize {
            0
        }
        fn evaluate(
            &mut self,
            _: &[u32],
            _: Range<usize>,
            _: usize,
        ) -> Result<Vec<PositionStats>, EngineError> {
            unreachable!()
        }
        fn fork(&self) -> Option<Box<dyn Backend + Send>> {
            Some(Box::new(Fake {
                parallel: self.parallel,
                info: info(),
            }))
        }
        fn parallelism(&self) -> usize {
            self.parallel
        }
    }

    /// A [`Fake`] backend with `parallel` units in flight.
    pub(crate) fn fake(parallel: usize) -> Fake {
        Fake {
            parallel,
            info: info(),
        }
    }

    fn run(parallel: usize, n: u64, stop_at: Option<u64>) -> (Vec<(u64, u64)>, Result<(), String>) {
        let mut b = Fake {
            parallel,
            info: info(),
        };
        let mut got = Vec::new();
        let r = for_each_ordered(
            &mut [&mut b as &mut dyn Backend],
            0..n,
            |_, &x| {
                // Uneven work, so that results finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((x * 7919) % 500));
                x * x
            },
            |_, x, y| {
                if Some(x) == stop_at {
                    return Err(format!("stop at {x}"));
                }
                got.push((x, y));
                Ok(())
            },
            false,
        );
        (got, r)
    }

    #[test]
    fn results_come_in_input_order_whatever_the_parallelism() {
        let expect: Vec<(u64, u64)> = (0..200).map(|x| (x, x * x)).collect();
        for p in [1, 2, 5] {
            let (got, r) = run(p, 200, None);
            assert!(r.is_ok());
            assert_eq!(got, expect, "parallelism {p}");
        }
    }

    #[test]
    fn a_sink_error_stops_the_run_after_everything_before_it() {
        for p in [1, 4] {
            let (got, r) = run(p, 100, Some(37));
            assert_eq!(r.unwrap_err(), "stop at 37");
            assert_eq!(got.len(), 37, "parallelism {p}");
            assert_eq!(got.last(), Some(&(36, 36 * 36)));
        }
    }

    #[test]
    fn empty_input() {
        let (got, r) = run(3, 0, None);
        assert!(got.is_empty() && r.is_ok());
    }
}
