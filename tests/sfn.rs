//! The state machines as Step Functions runs them: `statemachine/*.asl.json` executed by
//! aws-local-stepfunctions (`tests/sfn/run.mjs`), every Lambda Task served by the real
//! handler binaries through a Lambda Runtime API emulator, against a moto server for S3
//! (granules, store, artifacts) and SNS (notifications read back from an SQS queue).
//!
//! Needs `cargo build --workspace --bins` (the handlers) and `scripts/bootstrap.sh`
//! (moto, and `npm ci` in tests/sfn); nothing skips.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use common::sfn::{ARTIFACTS, FaultProxy, RunSpec, SfnEnv, SfnResult, runtime};
use mursst::pipeline::{self, UpdateOptions};
use mursst::store::values::Values;
use mursst::store::{SessionStores, StoreRepo, StoreState};
use mursst::synthetic::{self, ChunkLayout, DataVar, GranuleSpec};
use mursst::validate::ValidateMode;
use serde_json::{Value, json};
use zarrs::array::ArraySubset;

const LAT: usize = 40;
const LON: usize = 90;
const UPDATE: [&str; 10] = [
    "Discover",
    "AnythingNew",
    "GenerateRefs",
    "WriteBranch",
    "AnyNative",
    "Validate",
    "DryRun",
    "Merge",
    "AnyRejected",
    "Added",
];

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

fn spec(d: u32) -> GranuleSpec {
    let mut spec = GranuleSpec::small(day(d), LAT, LON);
    spec.chunks = ChunkLayout::uniform([16, 32]);
    spec
}

fn variables() -> Vec<String> {
    pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn input() -> Value {
    json!({ "lag_days": 0, "validate": "full" })
}

fn dates(days: &[u32]) -> Vec<Value> {
    days.iter().map(|d| json!(day(*d).to_string())).collect()
}

/// One test's world: moto with the buckets and topic, the granules it uploaded.
struct World {
    env: SfnEnv,
    granules: PathBuf,
}

impl World {
    /// A store on moto made from the days `init` (through the library, as `mursst init`
    /// does), and the granules `later` uploaded after it.
    fn new(tag: &str, init: &[u32], later: &[GranuleSpec]) -> Self {
        let env = SfnEnv::start(tag);
        let granules = env.tmp.path().join("granules");
        let world = Self { env, granules };
        for d in init {
            world.upload(&spec(*d));
        }
        if let (Some(first), Some(last)) = (init.first(), init.last()) {
            let options = UpdateOptions {
                lag_days: 0,
                validate: ValidateMode::Full,
                ..Default::default()
            };
            let ctx = world.env.ctx();
            let report = runtime()
                .block_on(pipeline::init(
                    &ctx,
                    &options,
                    day(*first),
                    day(*last),
                    &variables(),
                ))
                .expect("init the store on moto");
            assert_eq!(report.days_added.len(), init.len());
        }
        for s in later {
            world.upload(s);
        }
        world
    }

    /// Write the granule locally and upload it; its local path.
    fn upload(&self, spec: &GranuleSpec) -> PathBuf {
        let dir = self.granules.join(format!("seed-{}", spec.seed));
        let path = synthetic::write_granule(&dir, spec).unwrap();
        self.env.put_granule(&path);
        path
    }

    fn run(&self, name: &str, input: Value) -> SfnResult {
        self.env.run(
            name,
            &RunSpec {
                input,
                ..Default::default()
            },
        )
    }

    fn main(&self) -> Main {
        main_of(&self.env, &self.env.ctx())
    }
}

/// `main` of a store, and the branches beside it.
struct Main {
    tip: String,
    state: StoreState,
    branches: Vec<String>,
    repo: StoreRepo,
}

fn main_of(env: &SfnEnv, ctx: &pipeline::Context) -> Main {
    let s3 = env.moto.s3_settings();
    runtime().block_on(async {
        let repo = StoreRepo::open(&ctx.store, &s3, &ctx.source_s3)
            .await
            .unwrap();
        let tip = repo.branch_tip("main").await.unwrap();
        let state = repo.state_at(&tip).await.unwrap().expect("main holds days");
        let mut branches = repo.list_branches().await.unwrap();
        branches.sort();
        Main {
            tip: tip.to_string(),
            state,
            branches,
            repo,
        }
    })
}

/// The `time` values of a store's snapshot.
fn time_values(main: &Main) -> Vec<i64> {
    runtime().block_on(async {
        let tip = main.repo.branch_tip("main").await.unwrap();
        let stores = SessionStores::new(main.repo.readonly_at(&tip).await.unwrap()).await;
        let array = stores.array("time").await.unwrap();
        let meta = main.state.time_meta().unwrap();
        Values::read(
            &array,
            meta.data_type,
            &ArraySubset::new_with_shape(meta.shape.clone()),
        )
        .await
        .unwrap()
        .as_i64()
    })
}

fn assert_path(r: &SfnResult, want: &[&str]) {
    assert_eq!(r.path_taken(), want, "{}", r.summary());
}

/// The generate-refs invocations for `date`, in order.
fn refs_invocations(r: &SfnResult, date: NaiveDate) -> Vec<&Value> {
    r.invocations("mursst-generate-refs")
        .into_iter()
        .filter(|i| i["event"]["granule"]["date"] == date.to_string())
        .collect()
}

/// The artifacts a run left under its prefix.
fn run_artifacts(env: &SfnEnv, run_id: &str) -> Vec<String> {
    let (bucket, prefix) = ARTIFACTS
        .trim_start_matches("s3://")
        .split_once('/')
        .unwrap();
    env.list(bucket, &format!("{prefix}/runs/{run_id}/"))
}

/// Values a Full validation of `days` new days compares: every value of every data
/// variable of every new day.
fn all_values(days: usize) -> u64 {
    (days * pipeline::DEFAULT_VARIABLES.len() * LAT * LON) as u64
}

#[test]
fn new_days_reach_main_validated_and_the_same_input_again_adds_nothing() {
    let later: Vec<GranuleSpec> = (3..=5).map(spec).collect();
    let w = World::new("happy", &[1, 2], &later);
    let before = w.main();

    let r = w.run("update", input());
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    assert_path(&r, &UPDATE);
    let out = r.output();
    assert_eq!(
        out["write"]["days"],
        json!(dates(&[3, 4, 5])),
        "{}",
        r.summary()
    );
    for d in 3..=5 {
        let calls = refs_invocations(&r, day(d));
        assert_eq!(calls.len(), 1, "day {d}: {}", r.summary());
        assert_eq!(calls[0]["result"]["reused"], false, "day {d}");
    }
    // A full validation of the branch ran, on every value of the new days, and passed.
    let validation = &out["validation"];
    assert_eq!(validation["mode"], "full", "{validation}");
    assert_eq!(validation["values_compared"], all_values(3), "{validation}");
    assert!(validation["references_checked"].as_u64().unwrap() > 0);
    // main moved to exactly the validated commit.
    assert_eq!(out["merge"]["main_moved"], true, "{}", out["merge"]);
    assert_eq!(out["merge"]["old_snapshot"], before.tip.as_str());
    assert_eq!(out["merge"]["new_snapshot"], out["write"]["snapshot"]);
    let after = w.main();
    assert_eq!(after.tip, out["write"]["snapshot"].as_str().unwrap());
    assert_eq!(after.state.days, 5);
    assert_eq!(after.state.first_day, Some(day(1)));
    assert_eq!(after.state.last_day, Some(day(5)));
    assert_eq!(time_values(&after).len(), 5);
    assert_eq!(after.branches, ["main"], "the run's branch is deleted");
    let run_id = out["run"]["id"].as_str().unwrap();
    assert_eq!(
        run_artifacts(&w.env, run_id),
        Vec::<String>::new(),
        "a merged run removes its artifacts"
    );
    assert!(
        w.env.notifications(0).is_empty(),
        "a good run notifies nobody"
    );

    let again = w.run("again", input());
    assert_eq!(again.status(), "SUCCEEDED", "{}", again.summary());
    assert_path(&again, &["Discover", "AnythingNew", "NothingNew"]);
    let found = again.state_output("Discover").unwrap();
    assert_eq!(found["has_work"], false, "{found}");
    assert_eq!(found["store_last_day"], day(5).to_string());
    for f in ["mursst-generate-refs", "mursst-commit", "mursst-validate"] {
        assert!(
            again.invocations(f).is_empty(),
            "{f} ran: {}",
            again.summary()
        );
    }
    let unchanged = w.main();
    assert_eq!(
        unchanged.tip, after.tip,
        "nothing new leaves main where it was"
    );
    assert_eq!(unchanged.branches, ["main"]);

    // PO.DAAC replaces day 4 in place (a new ETag). The stage's MURSST_REPROCESS=changed
    // makes the next execution, with the same input, re-point it: same states, same
    // validation before main moves.
    let mut replaced = spec(4);
    replaced.seed = 7;
    w.upload(&replaced);
    let repointed = w.run("replaced", input());
    assert_eq!(repointed.status(), "SUCCEEDED", "{}", repointed.summary());
    assert_path(&repointed, &UPDATE);
    let found = repointed.state_output("Discover").unwrap();
    assert_eq!(found["reprocess"][0]["date"], day(4).to_string(), "{found}");
    assert_eq!(found["granules"].as_array().unwrap().len(), 1, "{found}");
    let out = repointed.output();
    assert_eq!(out["write"]["reprocessed"], json!(dates(&[4])), "{out}");
    assert_eq!(out["validation"]["values_compared"], all_values(1));
    let now = w.main();
    assert_eq!(now.tip, out["write"]["snapshot"].as_str().unwrap());
    assert_eq!(now.state.days, 5, "re-pointing adds no day");
    assert_eq!(now.branches, ["main"]);
}

#[test]
fn a_missing_day_stops_the_append_before_it() {
    let later: Vec<GranuleSpec> = [3, 5, 6].into_iter().map(spec).collect();
    let w = World::new("gap", &[1, 2], &later);
    let r = w.run("gap", input());
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    assert_path(&r, &UPDATE);
    let found = r.state_output("Discover").unwrap();
    assert_eq!(found["gap_at"], day(4).to_string(), "{found}");
    let taken: Vec<&Value> = found["granules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["date"])
        .collect();
    assert_eq!(taken, [&json!(day(3).to_string())]);
    assert_eq!(r.invocations("mursst-generate-refs").len(), 1);
    assert_eq!(r.output()["write"]["days"], json!(dates(&[3])));
    let main = w.main();
    assert_eq!(main.state.days, 3);
    assert_eq!(
        main.state.last_day,
        Some(day(3)),
        "day 5 and 6 wait for day 4"
    );
    assert_eq!(main.branches, ["main"]);
}

/// The Task states of `states` (and of their Maps' processors), each with whether an
/// enclosing Map catches what it does not.
fn tasks<'a>(states: &'a Value, caught_outside: bool, out: &mut Vec<(&'a str, &'a Value, bool)>) {
    for (name, state) in states.as_object().expect("States") {
        let catches_all = state["Catch"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["ErrorEquals"] == json!(["States.ALL"])));
        if state["Type"] == "Task" {
            out.push((name, state, caught_outside));
        }
        let inner = &state["ItemProcessor"]["States"];
        if inner.is_object() {
            tasks(inner, caught_outside || catches_all, out);
        }
    }
}

/// Each kind the handlers report is handled by name in both definitions: `Retryable`
/// (with the Lambda service's own transient errors) is retried, every other kind is
/// caught on its first try, so a deterministic failure is attempted once. The kinds come
/// from the library: a new one fails here until the definitions handle it.
#[test]
fn every_error_kind_is_retried_if_and_only_if_it_is_retryable() {
    for file in ["update.asl.json", "backfill.asl.json"] {
        let text = std::fs::read_to_string(common::sfn::definition(file)).unwrap();
        let def: Value = serde_json::from_str(&text).unwrap();
        let mut found = Vec::new();
        tasks(&def["States"], false, &mut found);
        let lambdas: Vec<_> = found
            .into_iter()
            .filter(|(_, t, _)| {
                t["Resource"]
                    .as_str()
                    .is_some_and(|r| r.contains("Function"))
            })
            .collect();
        assert!(lambdas.len() >= 5, "{file}: {} Lambda tasks", lambdas.len());
        for (name, task, caught_outside) in lambdas {
            let retried: Vec<&str> = task["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            assert!(
                !retried.contains(&"States.ALL"),
                "{file}: {name} retries everything"
            );
            for kind in pipeline::ErrorKind::ALL {
                assert_eq!(
                    retried.contains(&kind.name()),
                    kind == pipeline::ErrorKind::Retryable,
                    "{file}: {name}: {} in {retried:?}",
                    kind.name()
                );
            }
            let caught = task["Catch"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["ErrorEquals"] == json!(["States.ALL"])));
            assert!(
                caught || caught_outside,
                "{file}: {name}: nothing catches its failures"
            );
        }
    }
}

/// An execution input the discover step refuses is the caller's mistake: `InvalidInput`,
/// attempted once, notified, and main untouched.
#[test]
fn an_input_discover_refuses_is_invalid_input_attempted_once() {
    let w = World::new("invalid", &[1, 2], &[spec(3)]);
    let before = w.main();
    let mut bad = input();
    bad["lag_dayz"] = json!(0);
    let r = w.run("invalid", bad);
    assert_eq!(r.status(), "FAILED", "{}", r.summary());
    let calls = r.invocations("mursst-discover");
    assert_eq!(
        calls.len(),
        1,
        "InvalidInput is not retried: {}",
        r.summary()
    );
    assert_eq!(calls[0]["error"]["Error"], "InvalidInput", "{}", calls[0]);
    let cause = calls[0]["error"]["Cause"].as_str().unwrap_or_default();
    assert!(cause.contains("lag_dayz"), "names the field: {cause}");
    let notes = w.env.notifications(1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1["error"], "InvalidInput", "{:?}", notes[0]);
    assert_eq!(w.main().tip, before.tip, "main unchanged");
}

#[test]
fn a_granule_that_does_not_fit_is_rejected_and_notified() {
    // A shifted grid: unlike another chunking (materialized), nothing can fit it.
    let mut misfit = spec(4);
    misfit.lat_start = 1;
    let w = World::new("schema", &[1, 2], &[spec(3), misfit, spec(5)]);
    let misfit_url = format!("{}{}", common::sfn::SOURCE, spec(4).file_name());

    // Day 3 fits and is added; day 4 and the days after it are rejected.
    let r = w.run("partly-rejected", input());
    assert_eq!(r.status(), "FAILED", "{}", r.summary());
    assert_eq!(r.error(), Some("SchemaRejected"), "{}", r.summary());
    assert_path(
        &r,
        &[
            "Discover",
            "AnythingNew",
            "GenerateRefs",
            "WriteBranch",
            "AnyNative",
            "Validate",
            "DryRun",
            "Merge",
            "AnyRejected",
            "NotifyRejected",
            "SomeDaysRejected",
        ],
    );
    let after_first = w.main();
    assert_eq!(after_first.state.last_day, Some(day(3)));
    let notes = w.env.notifications(1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, message) = &notes[0];
    assert_eq!(subject, "mursst: granules rejected");
    assert_eq!(message["error"], "SchemaRejected", "{message}");
    assert_eq!(message["failed_state"], "WriteBranch");
    assert_eq!(message["days_added"], json!(dates(&[3])));
    assert_eq!(
        message["rejected"][0]["granule"],
        misfit_url.as_str(),
        "{message}"
    );
    assert!(
        message["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("lat: values"),
        "the reason names the field: {message}"
    );
    assert_eq!(message["main"], after_first.tip.as_str());

    // Next time the misfit is the first new day: nothing is written, main stays.
    let r = w.run("rejected", input());
    assert_eq!(r.status(), "FAILED", "{}", r.summary());
    assert_eq!(r.error(), Some("RunFailed"));
    assert_path(
        &r,
        &[
            "Discover",
            "AnythingNew",
            "GenerateRefs",
            "WriteBranch",
            "WriteBranchFailed",
            "Notify",
            "RunFailed",
        ],
    );
    let write = r.invocations("mursst-commit");
    assert_eq!(write.len(), 1, "SchemaRejected is not retried");
    assert_eq!(write[0]["error"]["Error"], "SchemaRejected", "{}", write[0]);
    let notes = w.env.notifications(1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, message) = &notes[0];
    assert_eq!(subject, "mursst: run failed");
    assert_eq!(message["failed_state"], "WriteBranch", "{message}");
    assert_eq!(message["error"], "SchemaRejected");
    assert_eq!(message["main"], "unchanged");
    assert_eq!(message["base_snapshot"], after_first.tip.as_str());
    let cause = message["cause"].as_str().unwrap();
    let cause: Value = serde_json::from_str(cause).expect("the cause is the function's error");
    assert_eq!(cause["errorType"], "SchemaRejected");
    assert!(
        cause["errorMessage"]
            .as_str()
            .unwrap()
            .contains(&misfit_url),
        "{cause}"
    );
    let main = w.main();
    assert_eq!(main.tip, after_first.tip, "main unchanged");
    assert_eq!(main.branches, ["main"], "nothing was written to a branch");
}

#[test]
fn a_dry_run_keeps_its_branch_and_a_granule_replaced_since_fails_validation() {
    let w = World::new("dry-run", &[1, 2], &[spec(3), spec(4)]);
    let before = w.main();

    let mut dry = input();
    dry["dry_run"] = json!(true);
    let r = w.run("dry-run", dry);
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    assert_path(
        &r,
        &[
            "Discover",
            "AnythingNew",
            "GenerateRefs",
            "WriteBranch",
            "AnyNative",
            "Validate",
            "DryRun",
            "BranchKept",
        ],
    );
    assert!(r.invocations("mursst-commit").len() == 1, "no merge");
    let branch = r.output()["run"]["branch"].as_str().unwrap().to_string();
    let main = w.main();
    assert_eq!(main.tip, before.tip, "a dry run leaves main");
    assert_eq!(main.branches, [branch.clone(), "main".to_string()]);
    let kept = runtime().block_on(async {
        let tip = main.repo.branch_tip(&branch).await.unwrap();
        assert_eq!(
            tip.to_string(),
            r.output()["write"]["snapshot"].as_str().unwrap()
        );
        main.repo.state_at(&tip).await.unwrap().unwrap()
    });
    assert_eq!(kept.days, 4);
    assert_eq!(kept.last_day, Some(day(4)));
    assert_eq!(r.output()["validation"]["values_compared"], all_values(2));

    // PO.DAAC re-processes a granule in place (what the settling lag guards against):
    // same layout, so it would pass the schema check, but other values. The branch's
    // references pin the version that was indexed, so reading the branch no longer
    // gives what the source holds. Re-running the dry run's Validate state with its
    // original input (a redrive of that state) must refuse the branch.
    let mut replaced = spec(4);
    replaced.seed = 7;
    w.upload(&replaced);
    let validate_input = r.state_input("Validate").unwrap().clone();
    let again = w.env.run(
        "validate-after-replace",
        &RunSpec {
            input: input(),
            start_at: Some(("Validate".into(), validate_input)),
            ..Default::default()
        },
    );
    assert_eq!(again.status(), "FAILED", "{}", again.summary());
    assert_path(
        &again,
        &["Validate", "ValidateFailed", "Notify", "RunFailed"],
    );
    let calls = again.invocations("mursst-validate");
    assert_eq!(calls.len(), 1, "ValidationFailed is not retried");
    assert_eq!(
        calls[0]["error"]["Error"],
        "ValidationFailed",
        "{}",
        again.summary()
    );
    let notes = w.env.notifications(1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let (subject, message) = &notes[0];
    assert_eq!(subject, "mursst: run failed");
    assert_eq!(message["failed_state"], "Validate", "{message}");
    assert_eq!(message["error"], "ValidationFailed");
    assert_eq!(message["branch"], branch.as_str());
    assert_eq!(message["main"], "unchanged");
    let cause = message["cause"].as_str().unwrap();
    assert!(cause.contains("data equal to source"), "{cause}");
    assert!(
        cause.contains(&branch),
        "the cause names the kept branch: {cause}"
    );
    let main = w.main();
    assert_eq!(main.tip, before.tip, "main unchanged");
    assert_eq!(
        main.branches,
        [branch, "main".to_string()],
        "the branch is kept"
    );
}

#[test]
fn a_throttled_granule_is_retried_by_the_definition_to_success() {
    let w = World::new("throttled", &[1, 2], &[spec(3), spec(4), spec(5)]);
    // S3 answers 503 SlowDown to generate-refs' first fifteen requests for day 4's
    // granule: the SDK's three attempts of each of the reader's five tries of its first
    // read, so that invocation fails `Retryable` and the Map iteration's Retry runs it
    // again.
    let proxy = FaultProxy::start(w.env.moto.endpoint(), spec(4).file_name(), 15);
    let env: BTreeMap<String, BTreeMap<String, String>> = [(
        "mursst-generate-refs".to_string(),
        [("AWS_ENDPOINT_URL".to_string(), proxy.endpoint())].into(),
    )]
    .into();
    let r = w.env.run(
        "throttled",
        &RunSpec {
            input: input(),
            env,
            ..Default::default()
        },
    );
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    assert_path(&r, &UPDATE);
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::SeqCst), 15);
    let calls = refs_invocations(&r, day(4));
    assert_eq!(calls.len(), 2, "{}", r.summary());
    assert_eq!(calls[0]["error"]["Error"], "Retryable", "{}", calls[0]);
    assert!(
        calls[0]["error"]["Cause"].as_str().unwrap().contains("503"),
        "{}",
        calls[0]
    );
    assert_eq!(calls[1]["result"]["date"], day(4).to_string());
    let retried = r.state_events("StateRetried", "GenerateRefsForGranule");
    assert_eq!(retried.len(), 1, "{}", r.summary());
    for d in [3, 5] {
        assert_eq!(refs_invocations(&r, day(d)).len(), 1);
    }
    assert_eq!(r.output()["write"]["days"], json!(dates(&[3, 4, 5])));
    let main = w.main();
    assert_eq!(main.state.last_day, Some(day(5)));
    assert_eq!(main.branches, ["main"]);
}

#[test]
fn a_sandbox_crashing_mid_invocation_is_lambda_unknown_and_retried_to_success() {
    let w = World::new("crash", &[1, 2], &[spec(3), spec(4), spec(5)]);
    // A killed process (out of memory, a timeout, a crash) is `Lambda.Unknown`, which
    // every Lambda Task retries: each step is idempotent (a retried generate-refs reuses
    // or rewrites its artifact).
    let r = w.env.run(
        "crash",
        &RunSpec {
            input: input(),
            crash_first: vec![spec(4).file_name()],
            ..Default::default()
        },
    );
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    assert_path(&r, &UPDATE);
    let calls = refs_invocations(&r, day(4));
    assert_eq!(calls.len(), 2, "{}", r.summary());
    assert_eq!(
        calls[0]["error"]["Error"],
        "Lambda.Unknown",
        "{}",
        r.summary()
    );
    assert!(calls[0]["crashed"].is_string(), "{}", calls[0]);
    assert!(
        calls[0]["error"]["Cause"]
            .as_str()
            .unwrap()
            .contains("SIGKILL"),
        "{}",
        calls[0]
    );
    assert_eq!(calls[1]["result"]["date"], day(4).to_string());
    assert_ne!(
        calls[0]["sandbox"], calls[1]["sandbox"],
        "a crashed sandbox is not reused"
    );
    assert_eq!(
        r.state_events("StateRetried", "GenerateRefsForGranule")
            .len(),
        1
    );
    let main = w.main();
    assert_eq!(main.state.last_day, Some(day(5)));
    assert_eq!(main.branches, ["main"]);
    assert!(w.env.notifications(0).is_empty());
}

#[test]
fn a_corrupt_granule_fails_its_iteration_and_a_redrive_finishes_the_run_as_a_clean_one() {
    let days = [3, 4, 5, 6];
    let later: Vec<GranuleSpec> = days.iter().map(|d| spec(*d)).collect();
    let w = World::new("redrive", &[1, 2], &later);
    let before = w.main();
    // Day 5's object is cut short (an interrupted copy).
    let good5 = w.granules.join("seed-0").join(spec(5).file_name());
    let bytes = std::fs::read(&good5).unwrap();
    w.env
        .put_granule_bytes(&spec(5).file_name(), bytes[..bytes.len() / 2].to_vec());

    let r = w.run("corrupt", input());
    assert_eq!(r.status(), "FAILED", "{}", r.summary());
    assert_path(
        &r,
        &[
            "Discover",
            "AnythingNew",
            "GenerateRefs",
            "GenerateRefsFailed",
            "Notify",
            "RunFailed",
        ],
    );
    let bad = refs_invocations(&r, day(5));
    assert_eq!(
        bad.len(),
        1,
        "a corrupt granule is not retried: {}",
        r.summary()
    );
    assert_eq!(bad[0]["error"]["Error"], "Failed", "{}", bad[0]);
    let notes = w.env.notifications(1);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1["failed_state"], "GenerateRefs", "{:?}", notes[0]);
    assert_eq!(notes[0].1["error"], "Failed");
    assert_eq!(w.main().tip, before.tip, "main unchanged");
    let indexed: Vec<String> = r
        .invocations("mursst-generate-refs")
        .into_iter()
        .filter(|i| i.get("result").is_some())
        .map(|i| i["result"]["date"].as_str().unwrap().to_string())
        .collect();
    assert!(!indexed.is_empty(), "{}", r.summary());

    // The granule is fixed; the failed state and everything after it run again with
    // their original input (the console's redrive of GenerateRefs).
    w.env.put_granule(&good5);
    let generate_input = r.state_input("GenerateRefs").unwrap().clone();
    let redrive = w.env.run(
        "redrive",
        &RunSpec {
            input: input(),
            start_at: Some(("GenerateRefs".into(), generate_input)),
            ..Default::default()
        },
    );
    assert_eq!(redrive.status(), "SUCCEEDED", "{}", redrive.summary());
    assert_path(&redrive, &UPDATE[2..]);
    for d in days {
        let calls = refs_invocations(&redrive, day(d));
        assert_eq!(calls.len(), 1, "day {d}: {}", redrive.summary());
        let reused = indexed.contains(&day(d).to_string());
        assert_eq!(
            calls[0]["result"]["reused"], reused,
            "day {d}: an iteration completed before is reused, the others indexed: {}",
            calls[0]
        );
    }
    let out = redrive.output();
    assert_eq!(out["write"]["days"], json!(dates(&days)));
    assert_eq!(out["validation"]["mode"], "full");
    assert_eq!(out["validation"]["values_compared"], all_values(days.len()));
    let redriven = w.main();
    assert_eq!(redriven.state.last_day, Some(day(6)));
    assert_eq!(redriven.branches, ["main"]);

    // The same days through a clean update (the library, one process) on another store.
    let mut clean_ctx = w.env.ctx();
    clean_ctx.store = mursst::store::RepoLocation::parse("s3://stores/clean").unwrap();
    clean_ctx.artifacts = "s3://artifacts/clean".into();
    let options = UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Full,
        ..Default::default()
    };
    runtime().block_on(async {
        pipeline::init(&clean_ctx, &options, day(1), day(2), &variables())
            .await
            .unwrap();
        let report = pipeline::update(&clean_ctx, &options).await.unwrap();
        assert_eq!(report.days_added, days.map(day));
    });
    let clean = main_of(&w.env, &clean_ctx);
    assert_eq!(redriven.state.days, clean.state.days);
    assert_eq!(redriven.state.first_day, clean.state.first_day);
    assert_eq!(redriven.state.last_day, clean.state.last_day);
    assert_eq!(
        format!("{:?}", redriven.state.schema.arrays),
        format!("{:?}", clean.state.schema.arrays),
        "array metadata"
    );
    assert_eq!(
        redriven.state.schema.coordinates, clean.state.schema.coordinates,
        "coordinates"
    );
    assert_eq!(
        redriven.state.group_attributes, clean.state.group_attributes,
        "group attributes"
    );
    assert_eq!(time_values(&redriven), time_values(&clean), "time values");
    let refs = |m: &Main| {
        runtime().block_on(async {
            let tip = m.repo.branch_tip("main").await.unwrap();
            common::store::all_refs(&m.repo, &tip, &m.state).await
        })
    };
    let (ours, theirs) = (refs(&redriven), refs(&clean));
    assert_eq!(ours.len(), theirs.len());
    assert!(
        ours.iter().all(|(_, _, what)| what.starts_with("s3://")),
        "every chunk is a virtual reference"
    );
    assert_eq!(ours, theirs, "every chunk references the same bytes");
}

#[test]
fn the_backfill_runs_its_distributed_map_inline() {
    // The record's way: an older era (days 1..=6: mask and sea_ice_fraction chunked
    // otherwise) materialized, the rest referenced, in commits of 4 days.
    let older = |d: u32| {
        let mut s = spec(d);
        if d <= 6 {
            s.chunks = ChunkLayout::uniform([16, 32])
                .with(DataVar::Mask, [8, 45])
                .with(DataVar::SeaIceFraction, [8, 45]);
        }
        s
    };
    let w = World::new("backfill", &[], &(1..=20).map(older).collect::<Vec<_>>());
    let r = w.env.run(
        "backfill",
        &RunSpec {
            definition: Some(common::sfn::definition("backfill.asl.json")),
            input: json!({
                "lag_days": 0,
                "validate": "full",
                "manifest": true,
                "batch_days": 4,
                "create": {
                    "start": day(1),
                    "end": day(20),
                    "variables": variables(),
                    "chunks": [16, 32],
                },
            }),
            inline_distributed_map: true,
            ..Default::default()
        },
    );
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    // Batches 0 (days 1-4) and 1 (days 5-8) hold native days: each goes through the
    // materialize Map and is committed on its second try; the other three at once.
    let native_round = ["CommitBatch", "AnyNative", "MaterializeBatch"];
    let commit = ["CommitBatch", "AnyNative", "MoreBatches"];
    let mut want = vec![
        "CreatesStore",
        "CreateStore",
        "Discover",
        "AnythingNew",
        "GenerateRefs.ItemReader",
        "GenerateRefs",
        "StartCommits",
    ];
    for batch in 0..5 {
        if batch < 2 {
            want.extend(native_round);
        }
        want.extend(commit);
    }
    want.extend(["ValidateBatches", "DryRun", "Merge", "Built"]);
    assert_path(&r, &want);
    // The ItemBatcher's batches of 16, each with the BatchInput.
    let batches = r.invocations("mursst-generate-refs");
    let mut sizes: Vec<usize> = batches
        .iter()
        .map(|b| b["event"]["Items"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [4, 16], "{}", r.summary());
    for b in &batches {
        assert_eq!(
            b["event"]["run"]["id"],
            r.output()["run"]["id"],
            "{}",
            b["event"]
        );
    }
    assert_eq!(
        r.state_output("GenerateRefs").unwrap()["refs"],
        Value::Null,
        "ResultPath null: nothing of the Map's result in the state"
    );
    // The commit Lambda made the empty repository before discover, which only reads.
    assert_eq!(
        r.invocations("mursst-commit")[0]["event"]["action"],
        "create",
        "{}",
        r.summary()
    );
    // Only the native days reached the materialize Lambda, once each.
    let mut materialized: Vec<String> = r
        .invocations("mursst-materialize")
        .iter()
        .map(|i| i["event"]["job"]["date"].as_str().unwrap().to_string())
        .collect();
    materialized.sort();
    let native: Vec<String> = (1..=6).map(|d| day(d).to_string()).collect();
    assert_eq!(materialized, native, "{}", r.summary());
    let main = w.main();
    assert_eq!(main.state.days, 20);
    assert_eq!(main.state.first_day, Some(day(1)));
    assert_eq!(main.state.last_day, Some(day(20)));
    assert_eq!(main.branches, ["main"]);
    let contents = runtime().block_on(common::store::main_contents(&main.repo));
    contents
        .assert_native_where(|name, c| c[0] < 6 && ["mask", "sea_ice_fraction"].contains(&name));
}

#[test]
fn a_native_day_is_materialized_by_its_own_lambda_then_written() {
    let mut other = spec(4);
    other.chunks = ChunkLayout::uniform([16, 32]).with(DataVar::AnalysedSst, [20, 45]);
    let w = World::new("native", &[1, 2, 3], &[other, spec(5)]);
    let r = w.run("native", input());
    assert_eq!(r.status(), "SUCCEEDED", "{}", r.summary());
    // The daily path, with one round through the materialize Map after the write.
    let mut want = UPDATE.to_vec();
    want.splice(5..5, ["Materialize", "WriteBranch", "AnyNative"]);
    assert_path(&r, &want);
    let jobs = r.invocations("mursst-materialize");
    assert_eq!(jobs.len(), 1, "{}", r.summary());
    assert_eq!(jobs[0]["event"]["job"]["date"], day(4).to_string());
    let write = &r.output()["write"];
    assert_eq!(
        write["native"][day(4).to_string()]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["analysed_sst"],
        "{write}"
    );
    assert!(write.get("materialize").is_none(), "{write}");
    assert_eq!(
        r.output()["validation"]["values_compared"],
        all_values(2),
        "{}",
        r.output()["validation"]
    );
    let main = w.main();
    assert_eq!(main.state.days, 5);
    let contents = runtime().block_on(common::store::main_contents(&main.repo));
    contents.assert_native_where(|name, c| c[0] == 3 && name == "analysed_sst");
}
