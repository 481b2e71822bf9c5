//! A minimal DevTools client for Debian's headless chromium over `--remote-debugging-pipe`
//! (NUL-separated JSON on file descriptors 3 and 4), enough to load a page with script execution
//! disabled, read the rendered DOM and take a full-page screenshot.
//!
//! The command-line shortcuts (`--dump-dom`, `--screenshot`) cannot be used with JavaScript off:
//! they drive the page through script themselves and print nothing when it is disabled.

use base64::Engine;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Debian's chromium, or why it cannot be used.
pub fn find() -> Result<PathBuf, String> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "chromium is not installed (apt-get install chromium)".to_string())
}

pub struct Browser {
    child: Child,
    to: File,
    from: File,
    buf: Vec<u8>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts headless chromium, offline, with a throwaway profile, and opens one tab whose
    /// scripts are disabled.
    pub fn start(chromium: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let (r, w) = (browser_reads.into_raw_fd(), browser_writes.into_raw_fd());
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            // Nothing leaves the machine: every host resolves to nowhere.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The ends are
        // first moved above 4 so that placing one on 3 cannot clobber the other, and the
        // close-on-exec flag is cleared explicitly (dup2 onto the same number keeps it).
        unsafe {
            cmd.pre_exec(move || {
                let (r2, w2) = (
                    libc::fcntl(r, libc::F_DUPFD, 10),
                    libc::fcntl(w, libc::F_DUPFD, 10),
                );
                if r2 < 0
                    || w2 < 0
                    || libc::dup2(r2, 3) < 0
                    || libc::dup2(w2, 4) < 0
                    || libc::fcntl(3, libc::F_SETFD, 0) < 0
                    || libc::fcntl(4, libc::F_SETFD, 0) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        // SAFETY: r and w came from into_raw_fd above; the parent's copies are closed here.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
        let mut b = Browser {
            child,
            to: File::from(we_write),
            from: File::from(we_read),
            buf: Vec::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target =
            b.call("Target.createTarget", json!({"url": "about:blank"}))["targetId"].clone();
        b.session = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        b.call(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": true}),
        );
        b.call("Page.enable", json!({}));
        b
    }

    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut msg = json!({"id": self.next_id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        self.next_id
    }

    fn next_message(&mut self) -> Value {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == 0) {
                let msg: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&msg[..msg.len() - 1]).expect("DevTools JSON");
            }
            let mut chunk = [0u8; 65536];
            let n = self.from.read(&mut chunk).expect("read from chromium");
            assert!(n > 0, "chromium closed the DevTools pipe");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Calls a DevTools method and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        loop {
            let msg = self.next_message();
            if msg["id"] == id {
                assert!(msg.get("error").is_none(), "{method}: {msg}");
                return msg["result"].clone();
            }
        }
    }

    /// Loads a file and waits for its load event.
    pub fn open(&mut self, page: &Path) {
        let url = format!("file://{}", page.display());
        let id = self.send("Page.navigate", json!({"url": url}));
        let mut navigated = false;
        let mut loaded = false;
        while !(navigated && loaded) {
            let msg = self.next_message();
            if msg["id"] == id {
                assert!(msg["result"].get("errorText").is_none(), "navigate: {msg}");
                navigated = true;
            }
            if msg["method"] == "Page.loadEventFired" {
                loaded = true;
            }
        }
    }

    /// The rendered document, serialized.
    pub fn dom(&mut self) -> String {
        let root = self.call("DOM.getDocument", json!({"depth": -1}))["root"]["nodeId"].clone();
        self.call("DOM.getOuterHTML", json!({"nodeId": root}))["outerHTML"]
            .as_str()
            .expect("outerHTML")
            .to_string()
    }

    /// A PNG of the whole page at `width` CSS pixels.
    pub fn screenshot(&mut self, width: u32, out: &Path) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .ceil();
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 png");
        std::fs::write(out, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
