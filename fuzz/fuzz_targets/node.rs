#![no_main]
//! `node`: the node-description inputs (uname, os-release, meminfo, nproc, cpuinfo, uptime); the
//! first byte picks which.

use ctdiag::classify::{MemberKind, NodeField};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let field = match pick % 6 {
        0 => NodeField::Uname,
        1 => NodeField::OsRelease,
        2 => NodeField::Meminfo,
        3 => NodeField::Cpus,
        4 => NodeField::Cpuinfo,
        _ => NodeField::Uptime,
    };
    ctdiag_fuzz::check_member(MemberKind::Node(field), rest);
});
