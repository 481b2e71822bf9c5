//! The file fallbacks: what the collector reads from procfs itself when a tool is absent, and the
//! few facts it needs before collecting (host name, kernel release, whether a kernel module is
//! already loaded). Everything is relative to `--proc-root`, so it works from a debug pod that sees
//! the host's procfs under /host/proc. Nothing here writes to procfs.

use crate::spool::Spool;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Streams a file into the spool, stopping at the cap.
pub fn copy_file(path: &Path, out: &mut Spool) -> io::Result<()> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !out.write_capped(&buf[..n])? {
            return Ok(());
        }
    }
}

/// `sysctl -a` restricted to `net.`, done by hand: every readable file under `<proc>/sys/net`,
/// sorted, as `key = value`. Keys follow procps: path separators become dots and dots inside a
/// component (VLAN interfaces such as `eth0.100`) become slashes. Unreadable entries are skipped,
/// as `sysctl -a` skips them (write-only files like `route/flush`, `stable_secret`).
pub fn sysctl_net(proc_root: &Path, out: &mut Spool) -> io::Result<()> {
    let root = proc_root.join("sys");
    let net = root.join("net");
    if !net.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a directory", net.display()),
        ));
    }
    let mut stack = vec![net];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for file in files {
        let Some(key) = sysctl_key(&root, &file) else {
            continue;
        };
        let Ok(value) = fs::read(&file) else { continue };
        let value = String::from_utf8_lossy(&value);
        let value = value.trim_end_matches('\n').replace('\n', " ");
        writeln!(out, "{key} = {value}")?;
        if out.truncated() {
            break;
        }
    }
    Ok(())
}

fn sysctl_key(sys_root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(sys_root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().replace('.', "/"))
        .collect();
    Some(parts.join("."))
}

/// `/proc/net/stat/nf_conntrack` printed the way `conntrack -S` prints it when netlink is not
/// available (conntrack-tools does exactly this fallback, FORMATS-DETAIL §3): one `cpu=N` row per
/// CPU, every column in decimal as `name=value `, so the analyzer's `-S` parser reads it as is.
pub fn proc_stat_as_conntrack_s(path: &Path, out: &mut Spool) -> io::Result<()> {
    let text = fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_ascii_whitespace()
        .collect();
    if header.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no header row"));
    }
    for (cpu, row) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        write!(out, "cpu={cpu:<4}\t")?;
        for (name, hex) in header.iter().zip(row.split_ascii_whitespace()) {
            match u64::from_str_radix(hex, 16) {
                Ok(v) => write!(out, "{name}={v} ")?,
                Err(_) => write!(out, "{name}={hex} ")?,
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Online CPUs, as `nproc` would count them on the host: `processor` rows of cpuinfo.
pub fn cpu_count(proc_root: &Path, out: &mut Spool) -> io::Result<()> {
    let text = fs::read_to_string(proc_root.join("cpuinfo"))?;
    let n = text.lines().filter(|l| l.starts_with("processor")).count();
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no processor rows in cpuinfo",
        ));
    }
    writeln!(out, "{n}")
}

/// One line of a procfs file, trimmed (`sys/kernel/hostname`, `sys/kernel/osrelease`).
pub fn read_line(proc_root: &Path, rel: &str) -> Option<String> {
    let text = fs::read_to_string(proc_root.join(rel)).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// Whether kernel module `name` is already there, so a tool that would make the kernel load it
/// (netlink families are autoloaded on first use) can be run without changing the node:
/// `Ok` when loaded, built in, or when the kernel cannot load modules at all; `Err(reason)` else.
pub fn module_present(proc_root: &Path, name: &str) -> Result<(), String> {
    let modules = match fs::read_to_string(proc_root.join("modules")) {
        Ok(m) => m,
        // Without /proc/modules the kernel has no loadable-module support: nothing can be loaded.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}/modules: {e}", proc_root.display())),
    };
    if modules.lines().any(|l| l.split(' ').next() == Some(name)) {
        return Ok(());
    }
    if Path::new("/sys/module").join(name).exists() {
        return Ok(());
    }
    if let Some(release) = read_line(proc_root, "sys/kernel/osrelease") {
        let builtin: PathBuf = ["/lib/modules", &release, "modules.builtin"]
            .iter()
            .collect();
        if let Ok(list) = fs::read_to_string(builtin) {
            let wanted = format!("/{name}.ko");
            if list.lines().any(|l| l.ends_with(&wanted)) {
                return Ok(());
            }
        }
    }
    if read_line(proc_root, "sys/kernel/modules_disabled").as_deref() == Some("1") {
        return Ok(());
    }
    Err(format!(
        "kernel module {name} is not loaded and running the tool would load it (the collector never changes the node)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_text(f: impl FnOnce(&mut Spool) -> io::Result<()>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), 1 << 20).unwrap();
        f(&mut s).unwrap();
        let (mut file, _, _) = s.finish().unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn proc_stat_rows_become_conntrack_s_rows_in_decimal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nf_conntrack");
        fs::write(
            &p,
            "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
             0000002a  00000000 00000000 00000000 00000f10 00000000 00000000 00000000 00000000 00000000 0000002e 00000000 00000000  00000000 00000000 00000000 00000000\n\
             0000002a  00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000\n",
        )
        .unwrap();
        let text = spool_text(|s| proc_stat_as_conntrack_s(&p, s));
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("cpu=0   \tentries=42 clashres=0 found=0 new=0 invalid=3856 "));
        assert!(first.contains(" drop=46 "));
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("cpu=1   \tentries=42 clashres=0 found=1 ")
        );
    }

    #[test]
    fn sysctl_walk_prints_net_keys_like_procps() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("sys/net");
        fs::create_dir_all(net.join("netfilter")).unwrap();
        fs::create_dir_all(net.join("ipv4/conf/eth0.100")).unwrap();
        fs::write(net.join("netfilter/nf_conntrack_max"), "262144\n").unwrap();
        fs::write(net.join("ipv4/conf/eth0.100/rp_filter"), "1\n").unwrap();
        fs::write(net.join("ipv4/ip_local_port_range"), "32768\t60999\n").unwrap();
        let text = spool_text(|s| sysctl_net(dir.path(), s));
        assert_eq!(
            text,
            "net.ipv4.conf.eth0/100.rp_filter = 1\n\
             net.ipv4.ip_local_port_range = 32768\t60999\n\
             net.netfilter.nf_conntrack_max = 262144\n"
        );
    }

    #[test]
    fn a_kernel_without_module_support_can_load_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(module_present(dir.path(), "nf_conntrack_netlink"), Ok(()));
        fs::write(
            dir.path().join("modules"),
            "nf_conntrack 172032 1 - Live 0x0\n",
        )
        .unwrap();
        assert_eq!(module_present(dir.path(), "nf_conntrack"), Ok(()));
        assert!(module_present(dir.path(), "ctdiag_no_such_module").is_err());
    }
}
