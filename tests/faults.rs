//! Flaky S3: `init` and `update` with the store and the granules on moto, every request
//! through a proxy (`tests/python/s3_proxy.py`) that answers a share of them with S3's
//! 503 SlowDown or 500 InternalError, a connection closed before the answer, or headers
//! and half a body. At 10% and 30% the runs complete and the store equals a clean run's;
//! when every granule read fails, the run fails naming the granule and main is unchanged.

mod common;

use chrono::NaiveDate;
use common::standins;
use common::store::{MainContents, main_contents};
use common::{MotoServer, TempDir};
use mursst::aws::AwsSettings;
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, UpdateOptions};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

const FAULTS: &str = "slowdown,internal,reset,truncate";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

/// Five granules on moto.
async fn granules(moto: &MotoServer, tmp: &TempDir) {
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    for d in 1..=5 {
        let mut spec = GranuleSpec::small(day(d), 40, 90);
        spec.chunks = ChunkLayout::uniform([16, 32]);
        let path = synthetic::write_granule(&tmp.path().join("granules"), &spec).unwrap();
        moto.put_file("granules", &format!("mur/{}", spec.file_name()), &path)
            .await;
    }
}

/// Everything through `endpoint` (moto itself, or the proxy).
fn context(moto: &MotoServer, endpoint: &str, store: &str, tmp: &TempDir) -> Context {
    let s3 = AwsSettings {
        endpoint: Some(endpoint.to_string()),
        ..moto.s3_settings()
    };
    Context {
        store: RepoLocation::parse(store).unwrap(),
        store_s3: s3.clone(),
        source: GranuleSource::parse("s3://granules/mur/", &s3.clone().into()).unwrap(),
        source_s3: s3.clone().into(),
        artifacts: tmp
            .path()
            .join(store.replace('/', "_"))
            .display()
            .to_string(),
        artifacts_s3: s3.into(),
        read_options: Default::default(),
        concurrency: 2,
        progress: None,
        defaults: Default::default(),
    }
}

fn options() -> UpdateOptions {
    UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Full,
        ..Default::default()
    }
}

/// `init` with days 1–3, then `update` adding 4 and 5.
async fn init_and_update(ctx: &Context) -> Result<(), pipeline::PipelineError> {
    let vars: Vec<String> = vec!["analysed_sst".into(), "mask".into()];
    pipeline::init(ctx, &options(), day(1), day(3), &vars).await?;
    let report = pipeline::update(ctx, &options()).await?;
    assert_eq!(report.days_added, [day(4), day(5)]);
    Ok(())
}

/// Main as moto holds it (never through the proxy).
async fn contents(moto: &MotoServer, store: &str) -> MainContents {
    let s3 = moto.s3_settings();
    let repo = StoreRepo::open(
        &RepoLocation::parse(store).unwrap(),
        &s3,
        &s3.clone().into(),
    )
    .await
    .unwrap();
    main_contents(&repo).await
}

#[tokio::test]
async fn runs_survive_a_flaky_s3_and_fail_cleanly_when_it_is_down() {
    let moto = MotoServer::start();
    let tmp = TempDir::new("faults");
    granules(&moto, &tmp).await;
    let clean_store = "s3://stores/clean";
    init_and_update(&context(&moto, &moto.endpoint(), clean_store, &tmp))
        .await
        .expect("a clean run");
    let clean = contents(&moto, clean_store).await;
    assert_eq!(clean.state.days, 5);

    for rate in [0.1, 0.3] {
        let proxy = standins::s3_proxy(&moto.endpoint(), rate, FAULTS, None);
        let store = format!("s3://stores/flaky-{}", (rate * 100.0) as u32);
        init_and_update(&context(&moto, &proxy.url(), &store, &tmp))
            .await
            .unwrap_or_else(|e| panic!("at {rate}: {e}"));
        let entries = proxy.entries();
        let faulted = |on: &str| {
            entries
                .iter()
                .filter(|e| {
                    !e["fault"].is_null() && e["path"].as_str().unwrap_or("").starts_with(on)
                })
                .count()
        };
        assert!(
            faulted("/granules/") > 0 && faulted("/stores/") > 0,
            "at {rate}: faults on granules {}, on the store {}",
            faulted("/granules/"),
            faulted("/stores/")
        );
        let flaky = contents(&moto, &store).await;
        assert_eq!(flaky.state.days, clean.state.days, "at {rate}");
        assert_eq!(flaky.state.last_day, clean.state.last_day, "at {rate}");
        assert_eq!(flaky.branches, ["main"], "at {rate}: no branch left behind");
        assert_eq!(flaky.refs, clean.refs, "at {rate}: the references differ");
    }

    // Every request for a granule fails: the update stops, naming what it could not
    // read, and main stays.
    let store = "s3://stores/down";
    let direct = context(&moto, &moto.endpoint(), store, &tmp);
    let vars: Vec<String> = vec!["analysed_sst".into()];
    pipeline::init(&direct, &options(), day(1), day(3), &vars)
        .await
        .expect("init");
    let before = contents(&moto, store).await;
    let proxy = standins::s3_proxy(&moto.endpoint(), 1.0, "slowdown,reset", Some("/granules/"));
    let err = pipeline::update(&context(&moto, &proxy.url(), store, &tmp), &options())
        .await
        .unwrap_err();
    let text = err.to_string();
    // The first request to fail for good is the listing of the granules.
    assert!(text.contains("s3://granules/mur/"), "{text}");
    assert!(
        text.contains("SlowDown") || text.contains("dispatch failure"),
        "{text}"
    );
    let after = contents(&moto, store).await;
    assert_eq!(after.state.days, before.state.days, "main unchanged");
    assert_eq!(after.refs, before.refs, "main unchanged");
}
