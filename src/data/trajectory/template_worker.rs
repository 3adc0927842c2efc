//! Chat templates run in a child process whose memory is bounded.
//!
//! A chat template is a program that came with a model file or from the user. Fuel bounds the
//! instructions it runs and its output is bounded, but nothing in minijinja bounds the memory of
//! its own variables: `{% set ns.s = ns.s ~ ns.s %}` doubles a string with a handful of
//! instructions, and an allocation that fails aborts the whole process, taking every finished
//! row of the run with it. So the `hesnr` binary runs every template but the built-in ChatML in a
//! worker (the binary itself, `hesnr render-worker`) whose address space is capped with
//! `RLIMIT_AS` ([`MAX_TEMPLATE_BYTES`], `HESNR_MAX_TEMPLATE_MB`). A template that runs over the
//! cap kills only the worker: the trajectory being rendered fails with an error naming the
//! bound, and the next rendering starts a fresh worker.
//!
//! The worker is used only once the binary has called [`run_templates_in_worker`] (a library user
//! renders in process), and only on Linux, where `RLIMIT_AS` is enforced.
//!
//! The protocol is JSON Lines over the worker's stdin and stdout: an [`Init`] line with the
//! template, then one [`Request`] line per rendering answered by one [`Reply`] line. The worker
//! renders with the same code as the process would ([`ChatTemplate::render_here`]), so a
//! rendering and its error messages are the same either way.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};

use super::render::ChatTemplate;
use crate::data::open::{limit_from_env, over_limit};

/// The address space a template worker may take: room for the largest record (256 MiB of
/// content, held as the request, the template's messages and the output) several times over,
/// and a fraction of a machine that runs models.
pub const MAX_TEMPLATE_BYTES: usize = 2 << 30;
/// The environment variable that sets the worker's bound in MiB instead of
/// [`MAX_TEMPLATE_BYTES`].
pub const MAX_TEMPLATE_ENV: &str = "HESNR_MAX_TEMPLATE_MB";
/// The hidden subcommand of the `hesnr` binary that runs [`serve`].
pub const WORKER_COMMAND: &str = "render-worker";

/// Where the worker comes from and how much memory it gets.
#[derive(Debug, Clone)]
struct WorkerSpec {
    exe: PathBuf,
    max_bytes: usize,
}

static WORKER_SPEC: OnceLock<WorkerSpec> = OnceLock::new();

/// Makes every chat template compiled from now on (but ChatML) render in a worker process run as
/// `exe render-worker`, with its memory bounded by `HESNR_MAX_TEMPLATE_MB` (default
/// [`MAX_TEMPLATE_BYTES`]). Called once by the `hesnr` binary; a no-op off Linux.
pub fn run_templates_in_worker(exe: PathBuf) {
    if cfg!(target_os = "linux") {
        let max_bytes = limit_from_env(MAX_TEMPLATE_ENV, MAX_TEMPLATE_BYTES);
        let _ = WORKER_SPEC.set(WorkerSpec { exe, max_bytes });
    }
}

/// The first line sent to a worker: the template it renders from then on.
#[derive(Debug, Serialize, Deserialize)]
struct Init {
    template: String,
    bos_token: String,
    eos_token: String,
}

/// One message as a template sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct TemplateMessage {
    pub role: String,
    pub content: String,
}

/// One rendering asked of a worker.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    messages: Vec<TemplateMessage>,
}

/// A worker's answer: the rendered text, or why rendering failed (the message the process
/// itself would have given).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Text(String),
    Failed(String),
}

/// The worker side: reads an [`Init`] line, then answers each [`Request`] line with a [`Reply`]
/// line until its input ends.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let bad = |what: &str, e: serde_json::Error| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let mut lines = input.lines();
    let Some(init) = lines.next() else {
        return Ok(());
    };
    let init: Init = serde_json::from_str(&init?).map_err(|e| bad("init line", e))?;
    let template = ChatTemplate::new(&init.template, "worker", &init.bos_token, &init.eos_token)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    for line in lines {
        let request: Request = serde_json::from_str(&line?).map_err(|e| bad("request", e))?;
        let reply = match template.render_here(&request.messages) {
            Ok(text) => Reply::Text(text),
            Err(message) => Reply::Failed(message),
        };
        serde_json::to_writer(&mut output, &reply).map_err(std::io::Error::other)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

/// The parent side for one template: a worker started on first use and again after one dies.
pub(super) struct Worker {
    spec: WorkerSpec,
    init_line: String,
    process: Mutex<Option<WorkerProcess>>,
}

impl Worker {
    /// A worker for this template, when the binary asked for workers
    /// ([`run_templates_in_worker`]); `None` means render in process.
    pub(super) fn for_template(template: &str, bos_token: &str, eos_token: &str) -> Option<Self> {
        let spec = WORKER_SPEC.get()?.clone();
        let init = Init {
            template: template.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        };
        Some(Self {
            spec,
            init_line: serde_json::to_string(&init).expect("strings serialise"),
            process: Mutex::new(None),
        })
    }

    /// Renders in the worker. `Err` is the reason, as [`ChatTemplate::render_here`] words it, or
    /// what became of a worker that died (over its memory bound, most often).
    pub(super) fn render(&self, messages: &[TemplateMessage]) -> Result<String, String> {
        let request = serde_json::to_string(&Request {
            messages: messages.to_vec(),
        })
        .expect("strings serialise");
        // One rendering at a time per template; a poisoned lock only means another thread
        // panicked between two exchanges, and the worker is restarted below if it is gone.
        let mut slot = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let process = WorkerProcess::spawn(&self.spec, &self.init_line).map_err(|e| {
                format!(
                    "cannot start the template worker `{} {WORKER_COMMAND}`: {e}",
                    self.spec.exe.display()
                )
            })?;
            *slot = Some(process);
        }
        let process = slot.as_mut().expect("started above");
        match process.exchange(&request) {
            Ok(Some(Reply::Text(text))) => Ok(text),
            Ok(Some(Reply::Failed(message))) => Err(message),
            Ok(None) | Err(_) => {
                let dead = slot.take().expect("started above");
                Err(dead.end(self.spec.max_bytes))
            }
        }
    }
}

/// A running worker and its pipes.
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
}

impl WorkerProcess {
    fn spawn(spec: &WorkerSpec, init_line: &str) -> std::io::Result<Self> {
        let mut command = Command::new(&spec.exe);
        // The worker logs nothing: its stderr is read only once it has died.
        command
            .args(["--log", "off", WORKER_COMMAND])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        limit_address_space(&mut command, spec.max_bytes);
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three were asked for as pipes")
        };
        let mut process = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
        };
        process.stdin.write_all(init_line.as_bytes())?;
        process.stdin.write_all(b"\n")?;
        Ok(process)
    }

    /// Sends one request and reads its reply; `None` when the worker closed its output (died).
    fn exchange(&mut self, request: &str) -> std::io::Result<Option<Reply>> {
        self.stdin.write_all(request.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Stops the worker and says why it stopped answering.
    fn end(mut self, max_bytes: usize) -> String {
        let _ = self.child.kill();
        let status = self.child.wait();
        let mut stderr = String::new();
        let _ = (&mut self.stderr).take(4096).read_to_string(&mut stderr);
        // Rust's own words when an allocation fails (then it aborts).
        if stderr.contains("memory allocation of") {
            return over_limit("its memory grew", max_bytes, MAX_TEMPLATE_ENV);
        }
        let said: String = stderr
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        if said.is_empty() {
            format!("the template worker stopped ({status})")
        } else {
            format!("the template worker stopped ({status}): {said}")
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Closing stdin ends the worker's loop; kill in case it is busy, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Caps the child's address space (`RLIMIT_AS`) before it runs.
#[cfg(target_os = "linux")]
fn limit_address_space(command: &mut Command, max_bytes: usize) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: max_bytes as libc::rlim_t,
        rlim_max: max_bytes as libc::rlim_t,
    };
    // SAFETY: the closure runs in the child between fork and exec and calls only setrlimit,
    // which is async-signal-safe, on a value copied in before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn limit_address_space(_: &mut Command, _: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<TemplateMessage> {
        vec![
            TemplateMessage {
                role: "user".into(),
                content: "Fix the bug.".into(),
            },
            TemplateMessage {
                role: "assistant".into(),
                content: "```bash\nls\n```".into(),
            },
        ]
    }

    /// The worker answers each request with what rendering in process gives, and a failing
    /// rendering with the same message.
    #[test]
    fn the_worker_renders_as_the_process_does() {
        let source = "{% for m in messages %}{% if m.content == 'boom' %}{{ raise_exception('no boom') }}{% endif %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}";
        let init = Init {
            template: source.into(),
            bos_token: "<s>".into(),
            eos_token: "</s>".into(),
        };
        let mut failing = messages();
        failing[1].content = "boom".into();
        let mut input = serde_json::to_string(&init).unwrap() + "\n";
        for m in [messages(), failing.clone()] {
            input += &(serde_json::to_string(&Request { messages: m }).unwrap() + "\n");
        }
        let mut output = Vec::new();
        serve(input.as_bytes(), &mut output).unwrap();
        let replies: Vec<Reply> = String::from_utf8(output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();

        let here = ChatTemplate::new(source, "here", "<s>", "</s>").unwrap();
        let expected_text = here.render_here(&messages()).unwrap();
        assert_eq!(
            expected_text,
            "[user]Fix the bug.</s>[assistant]```bash\nls\n```</s>"
        );
        let expected_failure = here.render_here(&failing).unwrap_err();
        assert!(expected_failure.contains("no boom"), "{expected_failure}");
        match &replies[..] {
            [Reply::Text(t), Reply::Failed(f)] => {
                assert_eq!(t, &expected_text);
                assert_eq!(f, &expected_failure);
            }
            other => panic!("unexpected replies {other:?}"),
        }
    }

    /// A broken protocol line is an error of the worker, not a silent empty answer.
    #[test]
    fn a_bad_request_line_stops_the_worker_with_an_error() {
        let init = serde_json::to_string(&Init {
            template: "{{ messages | length }}".into(),
            bos_token: String::new(),
            eos_token: String::new(),
        })
        .unwrap();
        let input = format!("{init}\nnot json\n");
        let e = serve(input.as_bytes(), Vec::new()).unwrap_err();
        assert!(e.to_string().contains("request"), "{e}");
    }
}
