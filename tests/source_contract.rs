//! One contract for every `RangeRead` backend, run against each of them (as object_store
//! runs one suite against every store): the indexer must not care where a granule lives.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{MotoServer, TempDir};
use mursst::objects::Object;
use mursst::source::{InMemory, RangeRead, SourceError};

fn data() -> Vec<u8> {
    (0..5000u32).map(|i| (i * 31 % 251) as u8).collect()
}

async fn contract(name: &str, reader: &dyn RangeRead) {
    let data = data();
    let size = data.len() as u64;
    let info = reader
        .info()
        .await
        .unwrap_or_else(|e| panic!("{name}: info: {e}"));
    assert_eq!(info.size, size, "{name}: size");
    assert_eq!(info.url, reader.url(), "{name}: info names the object");

    let read = |r: std::ops::Range<u64>| reader.read_range(r);
    assert_eq!(
        read(0..8).await.unwrap(),
        Bytes::from(data[..8].to_vec()),
        "{name}"
    );
    assert_eq!(
        read(1000..4096).await.unwrap(),
        &data[1000..4096],
        "{name}: middle"
    );
    assert_eq!(
        read(size - 10..size).await.unwrap(),
        &data[4990..],
        "{name}: tail"
    );
    assert!(
        read(17..17).await.unwrap().is_empty(),
        "{name}: an empty range inside"
    );
    assert!(
        read(size..size).await.unwrap().is_empty(),
        "{name}: an empty range at the end"
    );

    #[allow(clippy::reversed_empty_ranges)]
    let cases = [
        ("start after end", 9..3),
        ("past the end", size - 10..size + 10),
        ("wholly past the end", size + 5..size + 10),
        ("empty past the end", size + 1..size + 1),
    ];
    for (what, range) in cases {
        match read(range.clone()).await {
            Err(SourceError::OutOfBounds {
                start,
                end,
                size: got,
                location,
            }) => {
                assert_eq!((start, end), (range.start, range.end), "{name}: {what}");
                assert_eq!(
                    got, size,
                    "{name}: {what}: the error gives the object's size"
                );
                assert_eq!(location, reader.url(), "{name}: {what}");
            }
            other => panic!("{name}: {what}: expected OutOfBounds, got {other:?}"),
        }
    }

    let (head, head_info) = reader.read_head(100).await.unwrap();
    assert_eq!(head, &data[..100], "{name}: head");
    assert_eq!(head_info.size, size, "{name}: the head read knows the size");
    let (all, _) = reader.read_head(1 << 20).await.unwrap();
    assert_eq!(
        all,
        &data[..],
        "{name}: a head longer than the object is the object"
    );
}

#[tokio::test]
async fn every_backend_keeps_the_same_contract() {
    let tmp = TempDir::new("contract");
    let path = tmp.path().join("object.bin");
    std::fs::write(&path, data()).unwrap();
    contract("local", &Object::local(&path).unwrap()).await;
    let memory = InMemory {
        url: "memory://object.bin".into(),
        data: Bytes::from(data()),
    };
    contract("memory", &memory).await;

    let moto = MotoServer::start();
    moto.create_bucket("contract").await;
    moto.put_file("contract", "a/object.bin", &path).await;
    let s3: Arc<dyn RangeRead> =
        Arc::new(Object::s3(moto.client().await, "contract", "a/object.bin"));
    contract("s3", s3.as_ref()).await;

    // A missing object is an S3 error naming it, final (not worth retrying).
    let missing = Object::s3(moto.client().await, "contract", "a/none.bin");
    let err = missing.read_range(0..4).await.unwrap_err();
    assert!(
        err.to_string().contains("s3://contract/a/none.bin"),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
}
