//! The node's network namespaces, for `netns/namespaces.txt` and the per-namespace statistics
//! `netns/<inode>/proc-stat.N.txt` (docs/bundle-format.md).
//!
//! `nf_conntrack_count` and the conntrack statistics are per network namespace, while
//! `nf_conntrack_max` is global and compared with each namespace's own count
//! (`__nf_conntrack_alloc`, net/netfilter/nf_conntrack_core.c). A pod with its own iptables (a
//! mesh sidecar's REDIRECT) can fill its table while the host's is clean, and the kernel then
//! names it only by inode (`table full in netns 4026532177`). This module finds every namespace,
//! a process in it (whose `<proc>/<pid>/net/stat/nf_conntrack` is that namespace's view) and the
//! pod that process belongs to (its cgroup), so the analyzer can name the pod.
//!
//! Namespaces are found from `<proc>/*/ns/net` (readlink gives `net:[4026532177]`; the lowest pid
//! per inode is kept) and from the nsfs bind mounts under `/run/netns` and `/var/run/netns`
//! (`ip netns`, CNI plugins). A namespace held only by a bind mount has no process to read its
//! statistics through; entering it (`nsenter`) would act on the node, so it is listed without them.
//! Everything is read-only and relative to `--proc-root`; the bind-mount folders are taken beside
//! it (`/host/proc` → `/host/run/netns`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// At most this many namespaces are listed (the host always among them); a node runs far fewer
/// pods, so a larger number means something odd that a capped listing still shows.
pub const MAX_NAMESPACES: usize = 512;

/// One network namespace and the process it is read through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The namespace's nsfs inode, as the kernel log names it.
    pub inode: u64,
    /// The node's initial namespace.
    pub host: bool,
    /// The lowest pid in it, 0 when only a bind mount holds it.
    pub pid: u32,
    /// That process's `comm`, whitespace replaced by `_`.
    pub comm: Option<String>,
    /// The Kubernetes pod UID from that process's cgroup.
    pub pod_uid: Option<String>,
    /// That process's cgroup path.
    pub cgroup: Option<String>,
    /// An nsfs bind mount of it, as seen from the node's root (`/run/netns/cni-…`).
    pub path: Option<String>,
}

impl Namespace {
    /// Its line in `netns/namespaces.txt`, without the newline.
    pub fn line(&self) -> String {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut line = format!(
            "inode={} host={} pid={} comm={} pod_uid={} cgroup={}",
            self.inode,
            u8::from(self.host),
            self.pid,
            dash(&self.comm),
            dash(&self.pod_uid),
            dash(&self.cgroup),
        );
        if let Some(p) = &self.path {
            let _ = write!(line, " path={p}");
        }
        line
    }
}

/// The namespaces found on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The node's namespace: `<proc>/1/ns/net`, else `<proc>/self/ns/net`.
    pub host: Option<u64>,
    /// Sorted: the host first, then by inode; at most [`MAX_NAMESPACES`].
    pub namespaces: Vec<Namespace>,
    /// More were found than listed.
    pub capped: bool,
}

impl Discovery {
    /// `netns/namespaces.txt`.
    pub fn listing(&self) -> String {
        self.namespaces.iter().map(|n| n.line() + "\n").collect()
    }

    /// The namespaces whose statistics can be read through a process of theirs.
    pub fn readable(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.iter().filter(|n| !n.host && n.pid > 0)
    }
}

/// Finds the node's network namespaces (see the module docs).
pub fn discover(proc_root: &Path) -> Discovery {
    let node_root = proc_root.parent().unwrap_or(Path::new("/"));
    let binds: Vec<(u64, String)> = ["run/netns", "var/run/netns"]
        .iter()
        .flat_map(|dir| bind_mounts(&node_root.join(dir), node_root))
        .collect();
    assemble(proc_root, scan_proc(proc_root), binds)
}

/// `net:[4026532177]` → 4026532177.
pub fn parse_link(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The network namespace of a process (`self`, `1`, a pid), read without entering it.
pub fn inode_of(proc_root: &Path, pid: &str) -> Option<u64> {
    let link = fs::read_link(proc_root.join(pid).join("ns/net")).ok()?;
    parse_link(link.to_str()?)
}

/// Inode → the lowest pid in it, over every process whose namespace link is readable.
fn scan_proc(proc_root: &Path) -> BTreeMap<u64, u32> {
    let mut lowest = BTreeMap::new();
    let Ok(entries) = fs::read_dir(proc_root) else {
        return lowest;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit, or hide its namespace (EACCES), between listing and reading.
        if let Some(inode) = inode_of(proc_root, &pid.to_string()) {
            lowest
                .entry(inode)
                .and_modify(|p: &mut u32| *p = (*p).min(pid))
                .or_insert(pid);
        }
    }
    lowest
}

/// The nsfs bind mounts in `dir`, with their inode and path as seen from the node's root. A file
/// that is not an nsfs mount (a leftover of a deleted namespace) is skipped: its inode is not a
/// namespace's.
fn bind_mounts(dir: &Path, node_root: &Path) -> Vec<(u64, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let inode = nsfs_inode(&path)?;
            let shown = Path::new("/").join(path.strip_prefix(node_root).ok()?);
            Some((inode, shown.display().to_string()))
        })
        .collect();
    found.sort();
    found
}

/// The namespace inode of an nsfs file (a mounted `/run/netns/<name>`), or `None` for any other.
fn nsfs_inode(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes only into the zeroed struct it is given; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // f_type is i64 on x86_64 and narrower elsewhere.
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 != NSFS_MAGIC {
        return None;
    }
    Some(fs::metadata(path).ok()?.ino())
}

/// Builds the listing from what was found: `pids` (inode → lowest pid) and `binds` (inode, path).
fn assemble(proc_root: &Path, pids: BTreeMap<u64, u32>, binds: Vec<(u64, String)>) -> Discovery {
    let host = inode_of(proc_root, "1").or_else(|| inode_of(proc_root, "self"));
    let mut all: BTreeMap<u64, Namespace> = BTreeMap::new();
    for (inode, pid) in pids {
        let (pod_uid, cgroup) = read_cgroup(proc_root, pid);
        all.insert(
            inode,
            Namespace {
                inode,
                host: Some(inode) == host,
                pid,
                comm: read_comm(proc_root, pid),
                pod_uid,
                cgroup,
                path: None,
            },
        );
    }
    for (inode, path) in binds {
        let ns = all.entry(inode).or_insert_with(|| Namespace {
            inode,
            host: Some(inode) == host,
            pid: 0,
            comm: None,
            pod_uid: None,
            cgroup: None,
            path: None,
        });
        // The first in sorted order, so the listing does not depend on directory order.
        ns.path.get_or_insert(path);
    }
    let mut namespaces: Vec<Namespace> = all.into_values().collect();
    namespaces.sort_by_key(|n| (!n.host, n.inode));
    let capped = namespaces.len() > MAX_NAMESPACES;
    namespaces.truncate(MAX_NAMESPACES);
    Discovery {
        host,
        namespaces,
        capped,
    }
}

/// A value made safe for a space-separated `key=value` line: whitespace and controls become `_`.
fn field(value: &str) -> Option<String> {
    let v: String = value
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    (!v.is_empty()).then_some(v)
}

fn read_comm(proc_root: &Path, pid: u32) -> Option<String> {
    let text = fs::read_to_string(proc_root.join(pid.to_string()).join("comm")).ok()?;
    field(text.trim_end_matches('\n'))
}

/// The pod UID and the cgroup path of a process, from `<proc>/<pid>/cgroup`.
fn read_cgroup(proc_root: &Path, pid: u32) -> (Option<String>, Option<String>) {
    let Ok(text) = fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup")) else {
        return (None, None);
    };
    let (uid, path) = pod_of_cgroup(&text);
    (uid, path.and_then(field))
}

/// From a `/proc/<pid>/cgroup` file (`hierarchy:controllers:path` lines): the pod UID, if a line
/// names a kubelet pod cgroup, and the path to show — the line that names the pod, else the
/// unified (`0::`) line, else the first.
pub fn pod_of_cgroup(text: &str) -> (Option<String>, Option<&str>) {
    let paths: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let hierarchy = parts.next()?;
            parts.next()?;
            Some((hierarchy, parts.next()?))
        })
        .collect();
    if let Some((uid, path)) = paths
        .iter()
        .find_map(|(_, p)| pod_uid_in_path(p).map(|u| (u, *p)))
    {
        return (Some(uid), Some(path));
    }
    let shown = paths
        .iter()
        .find(|(h, _)| *h == "0")
        .or(paths.first())
        .map(|(_, p)| *p);
    (None, shown)
}

/// The pod UID in a kubelet cgroup path: systemd driver
/// (`…/kubepods-burstable-pod8d3f1e2a_4b6c_….slice/…`, underscores for dashes) or cgroupfs
/// driver (`/kubepods/burstable/pod8d3f1e2a-4b6c-…/<container>`).
pub fn pod_uid_in_path(path: &str) -> Option<String> {
    if !path.contains("kubepods") {
        return None;
    }
    path.split('/').find_map(|segment| {
        let candidate = match segment.strip_suffix(".slice") {
            Some(unit) => unit.rsplit_once("-pod")?.1.replace('_', "-"),
            None => segment.strip_prefix("pod")?.to_string(),
        };
        is_uid(&candidate).then_some(candidate)
    })
}

/// `8d3f1e2a-4b6c-4d1e-9f00-0123456789ab`: 36 characters, hex digits and dashes in the 8-4-4-4-12
/// places.
fn is_uid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The path of a namespace's own statistics: the process's view of `/proc/net/stat/nf_conntrack`.
pub fn stat_path(proc_root: &Path, pid: u32) -> PathBuf {
    proc_root
        .join(pid.to_string())
        .join("net/stat/nf_conntrack")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    // A fake procfs: real file shapes (namespace links, comm, cgroup) in a temp dir, because the
    // test cannot make processes in other namespaces. The real kernel is exercised by
    // collector/tests/kernel/netns.rs.
    fn fake_proc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        let process = |pid: &str, inode: u64, comm: &str, cgroup: &str| {
            let p = proc.join(pid);
            fs::create_dir_all(p.join("ns")).unwrap();
            symlink(format!("net:[{inode}]"), p.join("ns/net")).unwrap();
            fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(p.join("cgroup"), cgroup).unwrap();
        };
        process("1", 4026531840, "systemd", "0::/init.scope\n");
        process("self", 4026531840, "ctdiag-collect", "0::/\n");
        process(
            "812",
            4026531840,
            "kubelet",
            "0::/system.slice/kubelet.service\n",
        );
        process(
            "4301",
            4026532177,
            "envoy",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d3f1e2a_4b6c_4d1e_9f00_0123456789ab.slice/cri-containerd-5f2c.scope\n",
        );
        process(
            "4200",
            4026532177,
            "pause",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d3f1e2a_4b6c_4d1e_9f00_0123456789ab.slice/cri-containerd-aa01.scope\n",
        );
        process(
            "5000",
            4026532300,
            "my app",
            "12:pids:/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/0b1c\n11:memory:/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/0b1c\n",
        );
        fs::write(proc.join("version"), "Linux version 6.1.0\n").unwrap();
        dir
    }

    #[test]
    fn lists_the_host_first_and_each_pod_namespace_by_its_lowest_pid() {
        let dir = fake_proc();
        let proc = dir.path().join("proc");
        let binds = vec![
            (4026532177, "/run/netns/cni-1b2c".to_string()),
            (4026532555, "/run/netns/cni-9f8e".to_string()),
        ];
        let d = assemble(&proc, scan_proc(&proc), binds);
        assert_eq!(d.host, Some(4026531840));
        assert!(!d.capped);
        assert_eq!(
            d.listing(),
            "inode=4026531840 host=1 pid=1 comm=systemd pod_uid=- cgroup=/init.scope\n\
             inode=4026532177 host=0 pid=4200 comm=pause pod_uid=8d3f1e2a-4b6c-4d1e-9f00-0123456789ab cgroup=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d3f1e2a_4b6c_4d1e_9f00_0123456789ab.slice/cri-containerd-aa01.scope path=/run/netns/cni-1b2c\n\
             inode=4026532300 host=0 pid=5000 comm=my_app pod_uid=11111111-2222-3333-4444-555555555555 cgroup=/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/0b1c\n\
             inode=4026532555 host=0 pid=0 comm=- pod_uid=- cgroup=- path=/run/netns/cni-9f8e\n"
        );
        let readable: Vec<(u64, u32)> = d.readable().map(|n| (n.inode, n.pid)).collect();
        assert_eq!(readable, [(4026532177, 4200), (4026532300, 5000)]);
    }

    #[test]
    fn without_pid_1_the_host_is_the_collectors_own_namespace() {
        let dir = fake_proc();
        let proc = dir.path().join("proc");
        fs::remove_dir_all(proc.join("1")).unwrap();
        let d = assemble(&proc, scan_proc(&proc), Vec::new());
        assert_eq!(d.host, Some(4026531840));
        assert_eq!(d.namespaces[0].pid, 812);
        assert!(d.namespaces[0].host);
    }

    #[test]
    fn the_listing_is_capped_with_the_host_kept() {
        let dir = fake_proc();
        let proc = dir.path().join("proc");
        let pids: BTreeMap<u64, u32> = (0..600u64).map(|i| (4026533000 + i, 0)).collect();
        let mut pids = pids;
        pids.insert(4026531840, 1);
        let d = assemble(&proc, pids, Vec::new());
        assert!(d.capped);
        assert_eq!(d.namespaces.len(), MAX_NAMESPACES);
        assert!(d.namespaces[0].host);
    }

    #[test]
    fn a_missing_proc_root_finds_nothing_and_does_not_fail() {
        let d = discover(Path::new("/nonexistent/ctdiag/proc"));
        assert_eq!(d, Discovery::default());
    }

    #[test]
    fn pod_uids_come_from_both_cgroup_drivers() {
        assert_eq!(
            pod_uid_in_path(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f6a2b3c_1d2e_4f50_8a9b_c0d1e2f3a4b5.slice/cri-containerd-1.scope"
            ),
            Some("0f6a2b3c-1d2e-4f50-8a9b-c0d1e2f3a4b5".into())
        );
        // Guaranteed pods sit directly under kubepods.slice.
        assert_eq!(
            pod_uid_in_path(
                "/kubepods.slice/kubepods-pod0f6a2b3c_1d2e_4f50_8a9b_c0d1e2f3a4b5.slice"
            ),
            Some("0f6a2b3c-1d2e-4f50-8a9b-c0d1e2f3a4b5".into())
        );
        assert_eq!(
            pod_uid_in_path("/kubepods/burstable/pod8d3f1e2a-4b6c-4d1e-9f00-0123456789ab/5f2c9d"),
            Some("8d3f1e2a-4b6c-4d1e-9f00-0123456789ab".into())
        );
        assert_eq!(pod_uid_in_path("/system.slice/containerd.service"), None);
        assert_eq!(pod_uid_in_path("/kubepods/burstable/podnotauid/1"), None);
    }

    #[test]
    fn the_cgroup_shown_is_the_pod_line_else_the_unified_one() {
        let v1 = "12:pids:/user.slice\n0::/user.slice/session-3.scope\n";
        assert_eq!(
            pod_of_cgroup(v1),
            (None, Some("/user.slice/session-3.scope"))
        );
        assert_eq!(pod_of_cgroup(""), (None, None));
    }

    #[test]
    fn namespace_links_parse() {
        assert_eq!(parse_link("net:[4026532177]"), Some(4026532177));
        assert_eq!(parse_link("mnt:[4026532177]"), None);
        assert_eq!(parse_link("net:[x]"), None);
    }
}
