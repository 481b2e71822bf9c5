//! The one boundary with Kubernetes: the user's `kubectl`, with their kubeconfig and context.
//! No client library: kubectl already speaks every auth plugin, proxy and API version the user's
//! cluster needs, and what it prints (`-o json`) is the API's own shape.
//!
//! Commands run through [`crate::exec`] (own process group, deadline, killed when the run is
//! interrupted), except deletions: cleaning up must still work after an interrupt has stopped
//! everything else, so they run on their own short deadline.

use crate::exec::{self, Deadlines, Ended, ExecError};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A kubectl command that did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("{program} not found on PATH (install kubectl, or give --kubectl PATH)")]
    NotFound { program: String },
    #[error("`{command}` failed: {reason}")]
    Failed { command: String, reason: String },
    #[error("`{command}` timed out after {secs}s")]
    TimedOut { command: String, secs: u64 },
    #[error("interrupted")]
    Cancelled,
    #[error("`{command}`: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` printed no JSON kubectl would print: {source}")]
    Json {
        command: String,
        source: serde_json::Error,
    },
}

/// How to call kubectl.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub program: String,
    /// Global flags put before every command (`--context NAME`).
    pub global: Vec<String>,
    /// Deadline of a plain API call.
    pub timeout: Duration,
}

impl Kubectl {
    /// The full argv of `kubectl <global> <args>`.
    pub fn argv<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut v = vec![self.program.clone()];
        v.extend(self.global.iter().cloned());
        v.extend(args.iter().map(|a| a.as_ref().to_string()));
        v
    }

    /// Runs a command and returns its standard output.
    pub fn output<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<u8>, KubectlError> {
        let mut out = Vec::new();
        self.run(args, None, &mut out, self.timeout)?;
        Ok(out)
    }

    /// `kubectl … -o json`, parsed.
    pub fn json<S: AsRef<str>>(&self, args: &[S]) -> Result<Value, KubectlError> {
        let out = self.output(args)?;
        serde_json::from_slice(&out).map_err(|source| KubectlError::Json {
            command: self.shown(args),
            source,
        })
    }

    /// Runs a command with `stdin` as its input and its output into `out`.
    pub fn run<S: AsRef<str>>(
        &self,
        args: &[S],
        stdin: Option<&Path>,
        out: &mut dyn exec::SpoolSink,
        timeout: Duration,
    ) -> Result<(), KubectlError> {
        let argv = self.argv(args);
        let command = self.shown(args);
        let input = match stdin {
            Some(p) => Some(std::fs::File::open(p).map_err(|source| KubectlError::Io {
                command: command.clone(),
                source,
            })?),
            None => None,
        };
        let deadlines = Deadlines {
            timeout,
            stop_after: None,
        };
        let f = match exec::run_with_input(&argv, input, deadlines, out) {
            Ok(f) => f,
            Err(ExecError::NotFound) => {
                return Err(KubectlError::NotFound {
                    program: self.program.clone(),
                });
            }
            Err(ExecError::Cancelled) => return Err(KubectlError::Cancelled),
            Err(e) => {
                return Err(KubectlError::Failed {
                    command,
                    reason: e.to_string(),
                });
            }
        };
        match (f.ended, f.exit_status) {
            (Ended::Exited, Some(0)) => Ok(()),
            (Ended::Cancelled, _) => Err(KubectlError::Cancelled),
            (Ended::TimedOut, _) => Err(KubectlError::TimedOut {
                command,
                secs: timeout.as_secs(),
            }),
            (_, status) => Err(KubectlError::Failed {
                command,
                reason: stderr_reason(&f.stderr, status),
            }),
        }
    }

    /// `kubectl delete pod -n NS NAMES… --ignore-not-found --wait=false`, run even after an
    /// interrupt, within `timeout`. Returns whether kubectl said it succeeded.
    pub fn delete_pods(&self, namespace: &str, names: &[String], timeout: Duration) -> bool {
        if names.is_empty() {
            return true;
        }
        let mut args = vec![
            "delete".to_string(),
            "pod".into(),
            "-n".into(),
            namespace.into(),
        ];
        args.extend(names.iter().cloned());
        args.extend(["--ignore-not-found".to_string(), "--wait=false".into()]);
        let argv = self.argv(&args);
        let Ok(mut child) = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }

    /// The command as a person would type it, for messages.
    pub fn shown<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut words = vec!["kubectl".to_string()];
        words.extend(args.iter().map(|a| a.as_ref().to_string()));
        let line = words.join(" ");
        // Scripts passed to `sh -c` are long; the message needs the verb, not the script.
        match line.find(" -- ") {
            Some(i) if line.len() > 120 => format!("{} -- …", &line[..i]),
            _ => line,
        }
    }
}

/// The last non-empty stderr line (kubectl's `error: …`), or the exit status.
fn stderr_reason(stderr: &[u8], status: Option<i32>) -> String {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(400).collect::<String>());
    match (last, status) {
        (Some(l), _) => l,
        (None, Some(code)) => format!("exit status {code}"),
        (None, None) => "killed by a signal".into(),
    }
}

/// Names of the objects of a `kubectl get … -o json` list.
pub fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Why a pod is not running, from its status: the waiting reason and message of a container
/// (`ImagePullBackOff: Back-off pulling image …`), else the unready condition, else the phase.
pub fn pod_trouble(pod: &Value) -> Option<String> {
    let status = &pod["status"];
    let containers = status["containerStatuses"].as_array().into_iter().flatten();
    for c in containers {
        for state in ["waiting", "terminated"] {
            let s = &c["state"][state];
            if let Some(reason) = s["reason"].as_str() {
                return Some(match s["message"].as_str() {
                    Some(m) => format!("{reason}: {m}"),
                    None => reason.to_string(),
                });
            }
        }
    }
    let conditions = status["conditions"].as_array().into_iter().flatten();
    for c in conditions {
        if c["status"] == "False"
            && let Some(reason) = c["reason"].as_str()
        {
            return Some(match c["message"].as_str() {
                Some(m) => format!("{reason}: {m}"),
                None => reason.to_string(),
            });
        }
    }
    status["phase"].as_str().map(|p| format!("phase {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_trouble_is_its_containers_waiting_reason() {
        // `kubectl get pod -o json` of a pod whose image cannot be pulled (v1.31).
        let pod: Value = serde_json::from_str(
            r#"{"status": {"phase": "Pending",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [collector]"}],
                "containerStatuses": [{"name": "collector", "ready": false,
                   "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"busybox:1.36\""}}}]}}"#,
        )
        .unwrap();
        assert_eq!(
            pod_trouble(&pod).as_deref(),
            Some("ImagePullBackOff: Back-off pulling image \"busybox:1.36\"")
        );
        let unschedulable: Value = serde_json::from_str(
            r#"{"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            pod_trouble(&unschedulable).as_deref(),
            Some("Unschedulable: 0/3 nodes are available")
        );
    }

    #[test]
    fn the_reason_is_kubectls_last_error_line() {
        assert_eq!(
            stderr_reason(
                b"Warning: x\nError from server (NotFound): pods \"p\" not found\n\n",
                Some(1)
            ),
            "Error from server (NotFound): pods \"p\" not found"
        );
        assert_eq!(stderr_reason(b"", Some(2)), "exit status 2");
    }
}
