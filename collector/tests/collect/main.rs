//! Integration suites of `ctdiag-collect`: the real binary run against this machine's real tools
//! and procfs, with real processes for hangs and failures and a real TCP server for kube-proxy.
//! The only stand-ins are the Cilium CLI and kube-proxy, which cannot run here: a shell script
//! behind `--cilium-exec` and a std `TcpListener` serving real kube-proxy metric text.

mod kube_proxy;
mod runs;
mod util;
