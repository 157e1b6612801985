//! Arbitrary bytes through the HDF5 metadata reader: it must return (Ok or Err),
//! never panic, hang or exhaust memory.

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
