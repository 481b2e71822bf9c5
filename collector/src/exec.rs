//! Running one command the way a collector on a sick node must: in its own process group (so a
//! timeout kills `kubectl exec` and whatever it started, not only the first process), with stdin
//! closed, `LC_ALL=C` (output the parsers know), a deadline, and stdout streamed into a capped
//! [`Spool`]. Both pipes are read by `poll(2)` in the calling thread: no reader thread can be left
//! blocked on a pipe that an escaped grandchild keeps open.

use crate::spool::Spool;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Stderr is diagnostic text for a human; more than this is noise and is cut.
pub const STDERR_CAP: usize = 1 << 20;

/// How long a process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// A command that could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("not found on PATH")]
    NotFound,
    #[error("empty command")]
    Empty,
    #[error("cannot start: {0}")]
    Spawn(io::Error),
    #[error("reading its output: {0}")]
    Io(io::Error),
    #[error("not started: the run was interrupted")]
    Cancelled,
}

/// Why the command stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself.
    Exited,
    /// The deadline passed; its process group was killed.
    TimedOut,
    /// It ran for the requested time and was stopped on purpose (`cilium monitor`).
    Stopped,
    /// Its output passed the cap; it was stopped because the rest would be thrown away.
    OutputCap,
    /// The run was interrupted ([`cancel`]); its process group was killed.
    Cancelled,
}

/// Where a command's standard output goes: a capped [`Spool`], or any writer that keeps all of it.
pub trait SpoolSink {
    /// Keeps what it can of `buf`; `false` once bytes had to be dropped.
    fn write_capped(&mut self, buf: &[u8]) -> io::Result<bool>;
}

impl SpoolSink for Spool {
    fn write_capped(&mut self, buf: &[u8]) -> io::Result<bool> {
        Spool::write_capped(self, buf)
    }
}

impl SpoolSink for Vec<u8> {
    fn write_capped(&mut self, buf: &[u8]) -> io::Result<bool> {
        self.extend_from_slice(buf);
        Ok(true)
    }
}

impl SpoolSink for std::fs::File {
    fn write_capped(&mut self, buf: &[u8]) -> io::Result<bool> {
        io::Write::write_all(self, buf)?;
        Ok(true)
    }
}

/// What a finished command left behind, besides the stdout spool.
#[derive(Debug)]
pub struct Finished {
    pub ended: Ended,
    /// Exit code; `None` when it was ended by a signal (ours or another).
    pub exit_status: Option<i32>,
    pub signal: Option<i32>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
}

/// When to stop a command.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Past this the command has failed.
    pub timeout: Duration,
    /// Past this the command has done its job (streams such as `monitor` never end by themselves).
    pub stop_after: Option<Duration>,
}

/// Set once the user interrupts a run (`ctdiag-collect cluster` on SIGINT/SIGTERM): every running
/// command is stopped at its next poll, and none is started after.
static CANCELLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops every command of this process, now and from now on.
pub fn cancel() {
    CANCELLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether [`cancel`] was called.
pub fn cancelled() -> bool {
    CANCELLED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sleeps until `due`, waking early when the run is cancelled.
pub fn sleep_until(due: Instant) {
    while !cancelled() {
        let now = Instant::now();
        if now >= due {
            return;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}

/// The executable `name` would run as, searching `PATH` like a shell does.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(name)
            } else {
                dir.join(name)
            }
        })
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `argv`, streaming stdout into `out` and keeping stderr (capped) in memory.
pub fn run(argv: &[String], deadlines: Deadlines, out: &mut Spool) -> Result<Finished, ExecError> {
    run_with_input(argv, None, deadlines, out)
}

/// [`run`], with standard input read from `stdin` instead of closed (`kubectl exec -i` streaming
/// a file into a pod).
pub fn run_with_input(
    argv: &[String],
    stdin: Option<std::fs::File>,
    deadlines: Deadlines,
    out: &mut dyn SpoolSink,
) -> Result<Finished, ExecError> {
    let (name, args) = argv.split_first().ok_or(ExecError::Empty)?;
    let program = find_program(name).ok_or(ExecError::NotFound)?;
    if cancelled() {
        return Err(ExecError::Cancelled);
    }
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .process_group(0)
        .spawn()
        .map_err(ExecError::Spawn)?;
    let pumped = pump(&mut child, start, deadlines, out);
    let mut ended = match pumped {
        Ok((ended, _)) => ended,
        Err(_) => Ended::TimedOut,
    };
    if ended == Ended::Exited {
        // Both pipes closed, but the process may still run; it gets what is left of its time.
        if wait_until(&mut child, start + deadlines.timeout).is_none() {
            ended = Ended::TimedOut;
        }
    }
    if ended != Ended::Exited {
        kill_group(&mut child);
    }
    let status = child.try_wait().ok().flatten();
    let stderr = match pumped {
        Ok((_, stderr)) => stderr,
        Err(e) => return Err(ExecError::Io(e)),
    };
    Ok(Finished {
        ended,
        exit_status: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stderr,
        duration: start.elapsed(),
    })
}

/// Reads both pipes until they close, the deadline passes, or stdout passes the cap.
fn pump(
    child: &mut Child,
    start: Instant,
    deadlines: Deadlines,
    out: &mut dyn SpoolSink,
) -> io::Result<(Ended, Vec<u8>)> {
    let mut stdout = child.stdout.take();
    let mut stderr_pipe = child.stderr.take();
    let mut stderr = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = start + deadlines.timeout;
    let stop_at = deadlines.stop_after.map(|d| start + d);
    loop {
        if stdout.is_none() && stderr_pipe.is_none() {
            return Ok((Ended::Exited, stderr));
        }
        let now = Instant::now();
        if cancelled() {
            return Ok((Ended::Cancelled, stderr));
        }
        if stop_at.is_some_and(|s| now >= s) {
            return Ok((Ended::Stopped, stderr));
        }
        if now >= deadline {
            return Ok((Ended::TimedOut, stderr));
        }
        let next = stop_at.map_or(deadline, |s| s.min(deadline));
        let wait = (next - now).min(Duration::from_millis(200));
        let mut fds = [
            pollfd(stdout.as_ref().map(|p| p.as_raw_fd())),
            pollfd(stderr_pipe.as_ref().map(|p| p.as_raw_fd())),
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait.as_millis().max(1) as libc::c_int) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0
            && let Some(pipe) = stdout.as_mut()
        {
            match read_some(pipe, &mut buf)? {
                0 => stdout = None,
                n => {
                    if !out.write_capped(&buf[..n])? {
                        return Ok((Ended::OutputCap, stderr));
                    }
                }
            }
        }
        if fds[1].revents != 0
            && let Some(pipe) = stderr_pipe.as_mut()
        {
            match read_some(pipe, &mut buf)? {
                0 => stderr_pipe = None,
                n => {
                    let room = STDERR_CAP.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }
}

fn pollfd(fd: Option<i32>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.unwrap_or(-1),
        events: libc::POLLIN,
        revents: 0,
    }
}

fn read_some(pipe: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match pipe.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Reaps the child if it exits before `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// SIGTERM to the whole group, SIGKILL after a grace period. The group id is the child's pid
/// (`process_group(0)`), and the child is not reaped before the first signal, so the id cannot
/// have been reused by then.
fn kill_group(child: &mut Child) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: plain syscalls on a process group we created; failures (ESRCH) are harmless.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let exited = wait_until(child, Instant::now() + KILL_GRACE).is_some();
    // Grandchildren that ignored SIGTERM go too, whether or not the leader already exited.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    if !exited {
        // SIGKILL cannot be ignored; only a process stuck in the kernel survives this bound.
        wait_until(child, Instant::now() + KILL_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    fn deadlines(secs: u64) -> Deadlines {
        Deadlines {
            timeout: Duration::from_secs(secs),
            stop_after: None,
        }
    }

    fn spool(cap: u64) -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::new(dir.path(), cap).unwrap();
        (dir, s)
    }

    #[test]
    fn captures_stdout_stderr_and_exit_code() {
        let (_d, mut out) = spool(1 << 20);
        let f = run(
            &sh("echo out; echo err >&2; exit 3"),
            deadlines(10),
            &mut out,
        )
        .unwrap();
        assert_eq!((f.ended, f.exit_status), (Ended::Exited, Some(3)));
        assert_eq!(f.stderr, b"err\n");
        let (mut file, len, truncated) = out.finish().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!((text.as_str(), len, truncated), ("out\n", 4, false));
    }

    #[test]
    fn a_hanging_command_and_its_children_are_killed_at_the_deadline() {
        let (_d, mut out) = spool(1 << 20);
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!(
            "(sleep 3; touch {m}) & echo started; sleep 60",
            m = marker.display()
        );
        let f = run(
            &sh(&script),
            Deadlines {
                timeout: Duration::from_millis(300),
                stop_after: None,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(f.ended, Ended::TimedOut);
        assert_eq!(f.exit_status, None);
        assert!(f.duration < Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(4));
        assert!(
            !marker.exists(),
            "a grandchild outlived the process-group kill"
        );
    }

    #[test]
    fn output_past_the_cap_stops_the_command_and_is_marked() {
        let (_d, mut out) = spool(1000);
        let f = run(&sh("yes ctdiag"), deadlines(20), &mut out).unwrap();
        assert_eq!(f.ended, Ended::OutputCap);
        let (_, len, truncated) = out.finish().unwrap();
        assert_eq!((len, truncated), (1000, true));
    }

    #[test]
    fn a_stream_is_stopped_after_its_duration_without_failing() {
        let (_d, mut out) = spool(1 << 20);
        let f = run(
            &sh("echo listening; exec sleep 60"),
            Deadlines {
                timeout: Duration::from_secs(30),
                stop_after: Some(Duration::from_millis(300)),
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(f.ended, Ended::Stopped);
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn a_missing_program_is_reported_not_spawned() {
        let (_d, mut out) = spool(10);
        let err = run(&["ctdiag-no-such-tool".to_string()], deadlines(1), &mut out).unwrap_err();
        assert!(matches!(err, ExecError::NotFound));
    }
}
