#![no_main]
//! `conntrack_list`: arbitrary bytes through its parser; see `ctdiag_fuzz::check_member` for the
//! properties. Every line also goes through both line parsers, which must agree: the hand-written
//! hot path (`scan`) and the nom reference grammar (`entry`).

use ctdiag::classify::MemberKind;
use ctdiag::parse::conntrack_list::{entry, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        assert_eq!(scan(line), entry(line), "{:?}", String::from_utf8_lossy(line));
    }
    ctdiag_fuzz::check_member(MemberKind::ConntrackList, data)
});
