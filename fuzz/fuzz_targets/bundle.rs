#![no_main]
//! `bundle`: arbitrary bytes as a bundle file (tar.gz, tar, gzip'd or loose file — the reader
//! sniffs which). The analysis never panics, every renderer accepts its report, and the JSON
//! contract's keys are there.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ctdiag_fuzz::check_bundle(data));
