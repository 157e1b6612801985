//! The same pipeline with the store and the granules on S3 (a moto server on loopback),
//! as the Lambdas run it: custom endpoint, path-style addressing, static credentials.

mod common;

use chrono::NaiveDate;
use common::{MotoServer, TempDir};
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, UpdateOptions};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

#[tokio::test]
async fn store_and_granules_on_s3() {
    let moto = MotoServer::start();
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    let tmp = TempDir::new("s3");
    for d in 1..=4 {
        let mut spec = GranuleSpec::small(day(d), 40, 90);
        spec.chunks = ChunkLayout::uniform([16, 32]);
        let path = synthetic::write_granule(tmp.path(), &spec).unwrap();
        moto.put_file(
            "granules",
            &format!("MUR-JPL-L4-GLOB-v4.1/{}", spec.file_name()),
            &path,
        )
        .await;
    }
    let s3 = moto.s3_settings();
    let ctx = Context {
        store: RepoLocation::parse("s3://stores/mur/virtual").unwrap(),
        store_s3: s3.clone(),
        source: GranuleSource::parse("s3://granules/MUR-JPL-L4-GLOB-v4.1/", &s3.clone().into())
            .unwrap(),
        source_s3: s3.clone().into(),
        // The steps hand each other their artifacts through S3 too, as the Lambdas do.
        artifacts: "s3://stores/artifacts".into(),
        artifacts_s3: s3.clone().into(),
        read_options: Default::default(),
        concurrency: 2,
        progress: None,
        defaults: Default::default(),
    };
    let options = UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Full,
        ..Default::default()
    };
    let vars: Vec<String> = vec!["analysed_sst".into(), "mask".into()];
    let report = pipeline::init(&ctx, &options, day(1), day(2), &vars)
        .await
        .expect("init on S3");
    assert_eq!(report.days_added, vec![day(1), day(2)]);
    assert!(report.requests > 0 && report.bytes_read > 0);
    let report = pipeline::update(&ctx, &options)
        .await
        .expect("update on S3");
    assert_eq!(report.days_added, vec![day(3), day(4)]);
    let validation = report.validation.unwrap();
    assert!(validation.values_compared >= 2 * 2 * 40 * 90);

    let repo = StoreRepo::open(&ctx.store, &s3, &ctx.source_s3)
        .await
        .unwrap();
    assert_eq!(
        repo.container_prefixes(),
        ["s3://granules/MUR-JPL-L4-GLOB-v4.1/"]
    );
    let tip = repo.branch_tip("main").await.unwrap();
    let state = repo.state_at(&tip).await.unwrap().unwrap();
    assert_eq!(state.days, 4);
    assert_eq!(state.last_day, Some(day(4)));
}

#[tokio::test]
async fn one_request_reads_the_head_and_the_objects_version() {
    use mursst::objects::Object;
    use mursst::source::RangeRead;
    let moto = MotoServer::start();
    moto.create_bucket("heads").await;
    let tmp = TempDir::new("s3-head");
    let path = tmp.path().join("object.bin");
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    moto.put_file("heads", "a/object.bin", &path).await;
    let object = Object::s3(moto.client().await, "heads", "a/object.bin");
    let info = object.info().await.unwrap();
    let (head, head_info) = object.read_head(1000).await.unwrap();
    assert_eq!(&head[..], &data[..1000]);
    assert_eq!(
        head_info, info,
        "the head read carries size, ETag and last-modified"
    );
    assert_eq!(head_info.size, 5000);
    let (all, _) = object.read_head(1 << 20).await.unwrap();
    assert_eq!(&all[..], &data[..], "a short object comes back whole");
}

/// A granule large enough that its metadata is a small part of it: 36 chunks per
/// variable.
fn wide_spec(d: u32) -> GranuleSpec {
    let mut spec = GranuleSpec::small(day(d), 1800, 3600);
    // Open ocean: every chunk holds different values, so chunks are most of the file.
    spec.lat_start = 7000;
    spec.lon_start = 10000;
    spec.chunks = ChunkLayout::uniform([300, 600]);
    spec
}

/// Validation reads an S3 granule by ranges: its metadata and the chunks it compares
/// (a sample reads a fraction of the file, `full` at most all of it), and a reference to
/// the wrong bytes still fails, since libhdf5 reads where its own chunk index points.
#[tokio::test]
async fn validation_reads_only_what_it_compares_and_still_catches_a_wrong_reference() {
    use mursst::store::{SessionStores, writer};
    use mursst::validate::{self, Rule, ValidationError};

    let moto = MotoServer::start();
    moto.create_bucket("granules").await;
    let tmp = TempDir::new("s3-sparse");
    let mut sizes = Vec::new();
    for d in 1..=3 {
        let spec = wide_spec(d);
        let path = synthetic::write_granule(&tmp.path().join("granules"), &spec).unwrap();
        sizes.push(std::fs::metadata(&path).unwrap().len());
        moto.put_file("granules", &format!("mur/{}", spec.file_name()), &path)
            .await;
    }
    let s3 = moto.s3_settings();
    let ctx = Context {
        source: GranuleSource::parse("s3://granules/mur/", &s3.clone().into()).unwrap(),
        source_s3: s3.clone().into(),
        artifacts: tmp.path().join("artifacts").display().to_string(),
        ..Context::local(tmp.path().join("store"), tmp.path().join("granules"))
    };
    let options = |validate| UpdateOptions {
        lag_days: 0,
        validate,
        limit: Some(1),
        ..Default::default()
    };
    let vars: Vec<String> = vec!["analysed_sst".into(), "sea_ice_fraction".into()];
    let full = pipeline::init(&ctx, &options(ValidateMode::Full), day(1), day(1), &vars)
        .await
        .expect("init, full validation over S3")
        .validation
        .unwrap();
    assert_eq!(full.chunks_compared, 2 * 36);
    assert!(
        full.source_bytes_read > 0 && full.source_bytes_read <= sizes[0],
        "full: {} of {} bytes",
        full.source_bytes_read,
        sizes[0]
    );
    let sample = pipeline::update(&ctx, &options(ValidateMode::Sample))
        .await
        .expect("update, sampled validation over S3")
        .validation
        .unwrap();
    assert_eq!(sample.chunks_compared, 2 * validate::SAMPLE_CHUNKS as u64);
    assert!(
        sample.source_bytes_read > 0 && sample.source_bytes_read < sizes[1] / 2,
        "sample: {} of {} bytes",
        sample.source_bytes_read,
        sizes[1]
    );

    // Day 3 with two of its chunk references swapped: still inside the right granule.
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
        .await
        .unwrap();
    let base = repo.branch_tip("main").await.unwrap();
    let before = repo.state_at(&base).await.unwrap().unwrap();
    let granule = ctx
        .source
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.date == day(3))
        .unwrap();
    let (mut prepared, _, _) =
        pipeline::prepare_granule(&granule, &ctx.source_s3, &Default::default())
            .await
            .unwrap();
    let var = prepared
        .refs
        .variables
        .iter_mut()
        .find(|v| v.name == "analysed_sst")
        .unwrap();
    let first = var.chunks[0].1.clone();
    var.chunks[0].1 = var.chunks[7].1.clone();
    var.chunks[7].1 = first;
    let prepared = vec![prepared];
    let stores = SessionStores::new(repo.start_branch("swapped", &base).await.unwrap()).await;
    let summary = writer::write_days(
        &stores,
        Some(&before),
        &prepared,
        &Default::default(),
        "test",
        Default::default(),
    )
    .await
    .unwrap();
    let tip = icechunk::format::SnapshotId::try_from(summary.snapshot.as_str()).unwrap();
    let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
    let after = repo.state_at(&tip).await.unwrap().unwrap();
    let err = validate::validate(
        &stores,
        Some(&before),
        &after,
        &prepared,
        ValidateMode::Full,
        0,
        &ctx.source_s3,
    )
    .await
    .unwrap_err();
    match err {
        ValidationError::Failed { rule, detail } => {
            assert_eq!(rule, Rule::DataEqualToSource);
            assert!(detail.contains("analysed_sst"), "{detail}");
        }
        other => panic!("a wrong reference must fail the data rule, not {other}"),
    }
}

/// A materialized day lives in the store's own bucket: it reads with no credentials for
/// the source bucket, while a virtual day needs them. The granules sit behind a proxy
/// that, as PO.DAAC's bucket does, refuses every request not signed with the source's
/// own key (403 AccessDenied).
#[tokio::test]
async fn native_days_read_without_the_source_bucket_and_virtual_days_need_it() {
    use mursst::aws::StaticCredentials;
    use mursst::store::SessionStores;

    let moto = MotoServer::start();
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    let guard = common::standins::s3_guard(&moto.endpoint(), "granules", "SOURCEKEY");
    let tmp = TempDir::new("s3-native");
    for (d, chunks) in [(1, [16, 32]), (2, [20, 45])] {
        let mut spec = GranuleSpec::small(day(d), 40, 90);
        spec.chunks = ChunkLayout::uniform(chunks);
        let path = synthetic::write_granule(tmp.path(), &spec).unwrap();
        moto.put_file("granules", &format!("mur/{}", spec.file_name()), &path)
            .await;
    }
    let s3 = moto.s3_settings();
    let signed_by = |key: &str| mursst::aws::AwsSettings {
        endpoint: Some(guard.url()),
        credentials: Some(StaticCredentials {
            access_key_id: key.into(),
            secret_access_key: "secret".into(),
            session_token: None,
        }),
        ..s3.clone()
    };
    let source_s3 = signed_by("SOURCEKEY");
    let ctx = Context {
        store: RepoLocation::parse("s3://stores/native").unwrap(),
        store_s3: s3.clone(),
        source: GranuleSource::parse("s3://granules/mur/", &source_s3.clone().into()).unwrap(),
        source_s3: source_s3.clone().into(),
        artifacts: tmp.path().join("artifacts").display().to_string(),
        ..Context::local(tmp.path().join("store"), tmp.path())
    };
    let options = UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Full,
        ..Default::default()
    };
    let vars: Vec<String> = vec!["analysed_sst".into()];
    let report = pipeline::init(&ctx, &options, day(1), day(2), &vars)
        .await
        .expect("init");
    assert_eq!(report.native.keys().collect::<Vec<_>>(), [&day(2)]);

    // A reader with the source's key reads both days; one with another key (a user
    // without Earthdata credentials) reads the native day and is refused the virtual
    // one, by the source bucket.
    let read = |source: mursst::aws::AwsSettings, chunk: [u64; 3]| {
        let (store, s3) = (ctx.store.clone(), s3.clone());
        async move {
            let repo = StoreRepo::open(&store, &s3, &source.clone().into())
                .await
                .unwrap();
            let tip = repo.branch_tip("main").await.unwrap();
            let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
            let array = stores.array("analysed_sst").await.unwrap();
            array.async_retrieve_chunk::<Vec<i16>>(&chunk).await
        }
    };
    let denied_before = denied(&guard);
    let native = read(signed_by("NOEDLKEY"), [1, 0, 0])
        .await
        .expect("a native day reads from the store alone");
    assert_eq!(
        native.len(),
        16 * 32,
        "the store's chunk shape, not the granule's"
    );
    assert_eq!(
        denied(&guard),
        denied_before,
        "the native read never asked the source"
    );
    let err = read(signed_by("NOEDLKEY"), [0, 0, 0])
        .await
        .expect_err("a virtual day's chunk without the source's credentials");
    assert!(
        denied(&guard) > denied_before,
        "refused by the source bucket: {err}"
    );
    let virtual_day = read(source_s3, [0, 0, 0])
        .await
        .expect("the source's own key reads the virtual day");
    assert_eq!(virtual_day.len(), 16 * 32);
}

/// Requests the guard refused.
fn denied(guard: &common::standins::Standin) -> usize {
    guard
        .entries()
        .iter()
        .filter(|e| e["fault"] == "denied")
        .count()
}
