//! Arbitrary bytes as a CMR `granules.umm_json` page: the parser must return a page or
//! an error naming the field, never panic.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run parse_cmr_page -- -max_total_time=300`.
//! Seeds in `corpus/parse_cmr_page/` are recorded-shape pages from `tests/data/cmr/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mursst::cmr::parse_page("https://cmr.fuzz/search/granules.umm_json", data);
});
