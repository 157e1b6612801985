//! Arbitrary bytes through the HDF5 metadata reader: it must return (Ok or Err),
//! never panic, hang or exhaust memory.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run parse_metadata -- -max_total_time=600`
//! (or `RUSTC_BOOTSTRAP=1 cargo fuzz run ...` on stable). Fuzz builds set
//! `cfg(fuzzing)`, which skips metadata checksum checks so mutations reach the parsers.
//! The seeds in `corpus/parse_metadata/seed-*` are small real files; regenerate them
//! with the ignored `write_fuzz_corpus` test in `tests/hdf5_bad_input.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mursst::hdf5::{ReadOptions, read_metadata};
use mursst::source::InMemory;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().unwrap();
}

fuzz_target!(|data: &[u8]| {
    let src = InMemory {
        url: "mem://fuzz".into(),
        data: bytes::Bytes::copy_from_slice(data),
    };
    let options = ReadOptions::default();
    RUNTIME.with(|rt| {
        let _ = rt.block_on(read_metadata(&src, &options));
    });
});
