#![no_main]
//! `classify`: any path and content get a kind, the same one every time, and the kind's parser
//! accepts the content without panicking.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.iter().position(|b| *b == 0).unwrap_or(0);
    let path = String::from_utf8_lossy(&data[..cut]).into_owned();
    let head = data.get(cut + 1..).unwrap_or_default();
    let a = ctdiag::classify::classify(&path, head);
    let b = ctdiag::classify::classify(&path, head);
    assert_eq!(a, b, "classification is deterministic");
    ctdiag_fuzz::check_member(a.kind, head);
});
