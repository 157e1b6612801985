//! Runs started together: every day lands on main exactly once, the losers clean up
//! after themselves ("nothing to do: another run added these days"), no branch is left
//! behind, and the store equals a single clean run's.

mod common;

use std::process::{Command, Stdio};

use chrono::NaiveDate;
use common::{MotoServer, TempDir};
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, UpdateOptions};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 5, d).unwrap()
}

fn spec(d: u32) -> GranuleSpec {
    let mut s = GranuleSpec::small(day(d), 24, 40);
    s.chunks = ChunkLayout::uniform([12, 20]);
    s
}

fn options() -> UpdateOptions {
    UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Sample,
        ..Default::default()
    }
}

fn vars() -> Vec<String> {
    vec!["analysed_sst".into(), "sea_ice_fraction".into()]
}

/// Start one `mursst update` process per entry of `extra` (its extra arguments) at
/// once; each must succeed.
fn race(
    extra: &[&[&str]],
    ctx: &Context,
    source: &str,
    env: &[(&'static str, String)],
) -> Vec<String> {
    let children: Vec<_> = extra
        .iter()
        .map(|args| {
            common::spawn(
                Command::new(env!("CARGO_BIN_EXE_mursst"))
                    .args(["update", "--json", "--lag-days", "0"])
                    .args(*args)
                    .arg("--store")
                    .arg(ctx.store.to_string())
                    .args(["--source", source, "--artifacts", &ctx.artifacts])
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            report["message"].as_str().unwrap().to_string()
        })
        .collect()
}

async fn state(ctx: &Context) -> (StoreRepo, mursst::store::StoreState) {
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
        .await
        .unwrap();
    let tip = repo.branch_tip("main").await.unwrap();
    let state = repo.state_at(&tip).await.unwrap().unwrap();
    (repo, state)
}

async fn runs_started_together(
    n: usize,
    ctx: Context,
    clean: Context,
    source: &str,
    env: &[(&'static str, String)],
) {
    pipeline::init(&ctx, &options(), day(1), day(2), &vars())
        .await
        .unwrap();
    let messages = race(&vec![&[][..]; n], &ctx, source, env);
    let added = messages
        .iter()
        .filter(|m| m.starts_with("added 4 day(s)"))
        .count();
    let idle = messages
        .iter()
        .filter(|m| {
            m.starts_with("nothing to do: another run added these days")
                || *m == "nothing new to add"
        })
        .count();
    assert_eq!((added, idle), (1, n - 1), "{messages:#?}");

    let (repo, got) = state(&ctx).await;
    assert_eq!((got.days, got.last_day), (6, Some(day(6))));
    assert_eq!(
        repo.list_branches().await.unwrap(),
        ["main"],
        "no branch left behind"
    );
    let log = repo.log(100).await.unwrap();
    let mut days: Vec<String> = log.iter().flat_map(|e| e.days.clone()).collect();
    days.sort();
    let expected: Vec<String> = (1..=6).map(|d| day(d).to_string()).collect();
    assert_eq!(days, expected, "every day committed exactly once: {log:#?}");

    // The same days by one clean run.
    pipeline::init(&clean, &options(), day(1), day(6), &vars())
        .await
        .unwrap();
    let (clean_repo, want) = state(&clean).await;
    assert_eq!(got.group_attributes, want.group_attributes);
    assert_eq!(got.schema.arrays, want.schema.arrays);
    let got_refs =
        common::store::all_refs(&repo, &repo.branch_tip("main").await.unwrap(), &got).await;
    let want_refs = common::store::all_refs(
        &clean_repo,
        &clean_repo.branch_tip("main").await.unwrap(),
        &want,
    )
    .await;
    assert_eq!(got_refs, want_refs);
}

fn local(tmp: &TempDir, name: &str) -> Context {
    let mut ctx = Context::local(tmp.path().join(name), tmp.path().join("granules"));
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    ctx
}

async fn local_race(n: usize) {
    let tmp = TempDir::new("race");
    for d in 1..=6 {
        synthetic::write_granule(&tmp.path().join("granules"), &spec(d)).unwrap();
    }
    let source = tmp.path().join("granules").display().to_string();
    runs_started_together(n, local(&tmp, "store"), local(&tmp, "clean"), &source, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_a_local_store() {
    local_race(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_runs_on_a_local_store() {
    local_race(4).await;
}

async fn s3_race(n: usize) {
    let moto = MotoServer::start();
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    let tmp = TempDir::new("race-s3");
    for d in 1..=6 {
        let path = synthetic::write_granule(tmp.path(), &spec(d)).unwrap();
        moto.put_file("granules", &format!("mur/{}", spec(d).file_name()), &path)
            .await;
    }
    let s3 = moto.s3_settings();
    let ctx = |store: &str| Context {
        store: RepoLocation::parse(store).unwrap(),
        store_s3: s3.clone(),
        source: GranuleSource::parse("s3://granules/mur/", &s3.clone().into()).unwrap(),
        source_s3: s3.clone().into(),
        artifacts: "s3://stores/artifacts".into(),
        artifacts_s3: s3.clone().into(),
        ..Context::local("unused", "unused")
    };
    let env = moto.env();
    runs_started_together(
        n,
        ctx("s3://stores/race"),
        ctx("s3://stores/clean"),
        "s3://granules/mur/",
        &env,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_s3() {
    s3_race(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_runs_on_s3() {
    s3_race(4).await;
}

/// A run limited to two days races a full one: whichever moves main first, the other
/// either finds its days there or starts over from the new main and adds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_to_fewer_days_starts_over_from_the_new_main() {
    let tmp = TempDir::new("race-other");
    for d in 1..=6 {
        synthetic::write_granule(&tmp.path().join("granules"), &spec(d)).unwrap();
    }
    let source = tmp.path().join("granules").display().to_string();
    let ctx = local(&tmp, "store");
    pipeline::init(&ctx, &options(), day(1), day(2), &vars())
        .await
        .unwrap();
    let messages = race(&[&["--limit", "2"], &[]], &ctx, &source, &[]);
    let (repo, got) = state(&ctx).await;
    assert_eq!((got.days, got.last_day), (6, Some(day(6))), "{messages:#?}");
    assert_eq!(
        repo.list_branches().await.unwrap(),
        ["main"],
        "{messages:#?}"
    );
    let log = repo.log(100).await.unwrap();
    let mut days: Vec<String> = log.iter().flat_map(|e| e.days.clone()).collect();
    days.sort();
    let expected: Vec<String> = (1..=6).map(|d| day(d).to_string()).collect();
    assert_eq!(days, expected, "each day once: {messages:#?}");
}
