#![no_main]
//! `cilium_ct`: arbitrary bytes through its parser; see `ctdiag_fuzz::check_member` for the properties.

use ctdiag::classify::MemberKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ctdiag_fuzz::check_member(MemberKind::CiliumCtList, data));
