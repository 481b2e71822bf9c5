//! Ctrl-C (SIGINT) and SIGTERM during a cluster run: stop every command, delete every pod.
//!
//! The handler itself only writes the signal number to a pipe (`write(2)` is async-signal-safe);
//! a thread waiting on that pipe does the work: it cancels every running command
//! ([`crate::exec::cancel`]), so the node workers unwind and their [`super::pod::PodGuard`]s delete
//! their pods, and it deletes whatever is still registered itself, in case a worker is slow to
//! notice. A second signal ends the process at once; `activeDeadlineSeconds` bounds what is left.

use super::kubectl::Kubectl;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) on a pipe we own, from a one-byte buffer on the stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Whether the run was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Installs the SIGINT and SIGTERM handlers for the rest of the process's life.
pub fn install(kubectl: Kubectl) -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) fills the two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    PIPE_WRITE.store(write_fd, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler is valid; the handler only calls write.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let mut byte = 0u8;
                // SAFETY: read(2) into a one-byte buffer from the pipe's read end.
                let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
                if n <= 0 {
                    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                    {
                        continue;
                    }
                    return;
                }
                seen += 1;
                if seen > 1 {
                    eprintln!(
                        "ctdiag-collect: interrupted again: exiting now; pods left behind end at their activeDeadlineSeconds (kubectl get pods -A -l {}={})",
                        super::pod::MANAGED_BY,
                        super::pod::MANAGER
                    );
                    std::process::exit(130);
                }
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!(
                    "ctdiag-collect: interrupted (signal {byte}): stopping and deleting the pods of this run"
                );
                crate::exec::cancel();
                super::pod::delete_all(&kubectl);
            }
        })?;
    Ok(())
}
