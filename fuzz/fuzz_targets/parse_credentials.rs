//! Arbitrary bytes as PO.DAAC's `s3credentials` answer: the parser must return
//! credentials or an error naming the field, never panic.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run parse_credentials -- -max_total_time=300`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mursst::credentials::parse_credentials("https://edl.fuzz/s3credentials", data);
});
