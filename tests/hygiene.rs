//! Store hygiene: leftover branches listed and pruned, main's history, rollback by
//! compare-and-swap, snapshot expiry with garbage collection — locally and on S3.

mod common;

use std::process::Command;

use chrono::NaiveDate;
use common::{MotoServer, TempDir};
use mursst::aws::AwsSettings;
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, Step, UpdateOptions};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, GranuleSpec};
use mursst::validate::ValidateMode;
use serde_json::{Value, json};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 4, d).unwrap()
}

fn options(dry_run: bool) -> UpdateOptions {
    UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Metadata,
        dry_run,
        ..Default::default()
    }
}

fn variables() -> Vec<String> {
    vec!["analysed_sst".into(), "mask".into()]
}

/// A store built one day per run (days 1..=3), plus a dry run's leftover branch for day 4.
async fn store_with_history(ctx: &Context) -> StoreRepo {
    pipeline::init(ctx, &options(false), day(1), day(1), &variables())
        .await
        .unwrap();
    for limit in [1, 1] {
        let opts = UpdateOptions {
            limit: Some(limit),
            ..options(false)
        };
        pipeline::update(ctx, &opts).await.unwrap();
    }
    let dry = pipeline::update(ctx, &options(true)).await.unwrap();
    assert!(!dry.main_moved);
    StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
        .await
        .unwrap()
}

fn cli(store: &str, args: &[&str], env: &[(&str, String)]) -> Value {
    let out = common::output(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .args(["store"])
            .args(args)
            .args(["--store", store, "--json"])
            .envs(env.iter().map(|(k, v)| (k, v))),
    );
    assert!(
        out.status.success(),
        "mursst store {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Branches, log, prune and rollback through the CLI; expiry through the library and
/// the commit Lambda's `maintain` event.
async fn hygiene(ctx: &Context, store: &str, env: &[(&str, String)]) {
    let repo = store_with_history(ctx).await;

    let branches = cli(store, &["branches"], env);
    let temporary: Vec<&Value> = branches
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["temporary"] == true)
        .collect();
    assert_eq!(temporary.len(), 1, "the dry run's branch: {branches}");
    let leftover = temporary[0]["name"].as_str().unwrap().to_string();
    assert!(temporary[0]["run_id"].is_string(), "{branches}");

    let log = cli(store, &["log"], env);
    let log = log.as_array().unwrap();
    let days: Vec<&Value> = log.iter().map(|e| &e["days"]).collect();
    assert_eq!(
        days[..3],
        [
            &json!(["2025-04-03"]),
            &json!(["2025-04-02"]),
            &json!(["2025-04-01"])
        ],
        "newest first, each commit with its days: {log:?}"
    );

    // Prune: a young branch stays unless old enough; one in --keep always stays.
    assert_eq!(cli(store, &["prune", "--older-than", "1d"], env), json!([]));
    let kept = cli(
        store,
        &["prune", "--older-than", "0s", "--keep", &leftover],
        env,
    );
    assert_eq!(kept, json!([]));
    assert_eq!(
        cli(store, &["prune", "--older-than", "0s"], env),
        json!([leftover])
    );
    assert_eq!(repo.list_branches().await.unwrap(), ["main"]);

    // Rollback to day 2's snapshot: main holds two days again.
    let day2 = log[1]["snapshot"].as_str().unwrap();
    let tip = repo.branch_tip("main").await.unwrap();
    cli(store, &["rollback", "--to", day2], env);
    let main = repo.branch_tip("main").await.unwrap();
    assert_eq!(main.to_string(), day2);
    assert_eq!(repo.state_at(&main).await.unwrap().unwrap().days, 2);
    // A stale expectation is refused (another run moved main), and main stays.
    let day1 =
        icechunk::format::SnapshotId::try_from(log[2]["snapshot"].as_str().unwrap()).unwrap();
    let err = repo.rollback(&day1, &tip).await.unwrap_err();
    assert!(err.to_string().contains("rollback refused"), "{err}");
    assert_eq!(repo.branch_tip("main").await.unwrap(), main);

    // Expire everything older than now through the maintain event: history before main's
    // tip is released and collected, and main still reads in full.
    let out = pipeline::run_step(
        ctx,
        Step::Commit,
        json!({"action": "maintain", "expire_older_than_days": 0, "prune_older_than_days": 7}),
    )
    .await
    .unwrap();
    assert!(
        out["expired"]["snapshots_released"].as_u64().unwrap() >= 2,
        "{out}"
    );
    let after = repo.log(100).await.unwrap();
    assert!(after.len() < log.len(), "{after:?}");
    let state = repo.state_at(&main).await.unwrap().unwrap();
    assert_eq!((state.days, state.last_day), (2, Some(day(2))));
    // The pipeline still appends on top of the expired history.
    let report = pipeline::update(ctx, &options(false)).await.unwrap();
    assert_eq!(report.days_added, [day(3), day(4)]);
}

fn granule(d: u32) -> GranuleSpec {
    GranuleSpec::small(day(d), 20, 30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_hygiene() {
    let tmp = TempDir::new("hygiene");
    let granules = tmp.path().join("granules");
    for d in 1..=4 {
        synthetic::write_granule(&granules, &granule(d)).unwrap();
    }
    let store = tmp.path().join("store");
    let mut ctx = Context::local(&store, &granules);
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    hygiene(&ctx, store.to_str().unwrap(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_hygiene() {
    let moto = MotoServer::start();
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    let tmp = TempDir::new("hygiene-s3");
    for d in 1..=4 {
        let spec = granule(d);
        let path = synthetic::write_granule(tmp.path(), &spec).unwrap();
        moto.put_file("granules", &format!("mur/{}", spec.file_name()), &path)
            .await;
    }
    let s3: AwsSettings = moto.s3_settings();
    let ctx = Context {
        store: RepoLocation::parse("s3://stores/hygiene").unwrap(),
        store_s3: s3.clone(),
        source: GranuleSource::parse("s3://granules/mur/", &s3.clone().into()).unwrap(),
        source_s3: s3.clone().into(),
        artifacts: "s3://stores/artifacts".into(),
        artifacts_s3: s3.clone().into(),
        ..Context::local("unused", "unused")
    };
    let env: Vec<(&str, String)> = moto.env();
    hygiene(&ctx, "s3://stores/hygiene", &env).await;
}
