//! Sources that change after ingest: PO.DAAC replaces granules in place for days after
//! their date. A replaced granule makes reads of its day fail loudly (the references
//! pin the version they were made from), and `--reprocess changed` re-points the day
//! through the same branch → validate → merge path, so a short lag stays correct. On
//! the embedded default and on S3 (moto: a rewritten object gets a new ETag).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use common::store::main_contents;
use common::{MotoServer, TempDir};
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, PipelineError, Report, Reprocess, UpdateOptions};
use mursst::store::{RepoLocation, SessionStores, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 5, d).unwrap()
}

fn spec(d: u32, seed: u64) -> GranuleSpec {
    let mut s = GranuleSpec::small(day(d), 40, 90);
    s.lat_start = 8000;
    s.chunks = ChunkLayout::uniform([16, 32]);
    s.seed = seed;
    s
}

fn changed() -> Option<Reprocess> {
    Some("changed".parse().unwrap())
}

/// Where the scenario runs, and how a granule is replaced there.
trait Place {
    fn ctx(&self) -> Context;
    /// Write (or replace) the granule of `spec` in the source.
    async fn put(&self, spec: &GranuleSpec);
}

struct Local {
    tmp: TempDir,
    /// Granules written so far: each gets a later modification time than the last.
    puts: std::sync::atomic::AtomicU64,
}

impl Local {
    fn new(tmp: &str) -> Self {
        Self {
            tmp: TempDir::new(tmp),
            puts: Default::default(),
        }
    }

    fn granules(&self) -> PathBuf {
        self.tmp.path().join("granules")
    }
}

impl Place for Local {
    fn ctx(&self) -> Context {
        let mut ctx = Context::local(self.tmp.path().join("store"), self.granules());
        ctx.artifacts = self.tmp.path().join("artifacts").display().to_string();
        ctx
    }

    async fn put(&self, spec: &GranuleSpec) {
        let path = synthetic::write_granule(&self.granules(), spec).unwrap();
        // A local reference pins the modification time, to the second (icechunk's
        // resolution): a replacement in the same second would go unnoticed, so each
        // write here is a minute after the one before.
        let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60 * (n + 1));
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
}

struct OnS3 {
    moto: MotoServer,
    tmp: TempDir,
    tag: String,
}

impl OnS3 {
    /// A moto server of its own with the granule and store buckets.
    async fn new(tmp: &str, tag: &str) -> Self {
        let moto = MotoServer::start();
        moto.create_bucket("granules").await;
        moto.create_bucket("stores").await;
        Self {
            moto,
            tmp: TempDir::new(tmp),
            tag: tag.into(),
        }
    }
}

impl Place for OnS3 {
    fn ctx(&self) -> Context {
        let s3 = self.moto.s3_settings();
        Context {
            store: RepoLocation::parse(&format!("s3://stores/{}/store", self.tag)).unwrap(),
            store_s3: s3.clone(),
            source: GranuleSource::parse("s3://granules/MUR/", &s3.clone().into()).unwrap(),
            source_s3: s3.clone().into(),
            artifacts: format!("s3://stores/{}/artifacts", self.tag),
            artifacts_s3: s3.into(),
            read_options: Default::default(),
            concurrency: 2,
            progress: None,
            defaults: Default::default(),
        }
    }

    async fn put(&self, spec: &GranuleSpec) {
        let path = synthetic::write_granule(self.tmp.path(), spec).unwrap();
        let key = format!("MUR/{}", spec.file_name());
        self.moto.put_file("granules", &key, &path).await;
    }
}

fn options(today: u32, reprocess: Option<Reprocess>) -> UpdateOptions {
    UpdateOptions {
        lag_days: 2,
        today: day(today),
        validate: ValidateMode::Full,
        reprocess,
        ..Default::default()
    }
}

async fn repo(ctx: &Context) -> StoreRepo {
    StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
        .await
        .unwrap()
}

/// Read every chunk of day `t` of `analysed_sst` on main, as a reader would.
async fn read_day_on_main(ctx: &Context, t: u64) -> Result<(), String> {
    let repo = repo(ctx).await;
    let tip = repo.branch_tip("main").await.unwrap();
    let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
    let array = stores.array("analysed_sst").await.unwrap();
    for i in 0..3u64 {
        for j in 0..3u64 {
            array
                .async_retrieve_encoded_chunk(&[t, i, j])
                .await
                .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
        }
    }
    Ok(())
}

/// Days 1..=3 in the store, 4 and 5 added with a 2-day lag on day 7; day 4's granule
/// is replaced on day 8, and that night's run re-points it while adding day 6.
async fn replaced_two_days_after_ingest(place: &impl Place, clean: &impl Place) {
    let ctx = granules_and_store(place, 6).await;
    let vars: Vec<String> = vec!["analysed_sst".into(), "mask".into()];
    let report = pipeline::update(&ctx, &options(7, changed()))
        .await
        .expect("day 7's run");
    assert_eq!(report.days_added, [day(4), day(5)]);
    assert!(report.days_reprocessed.is_empty(), "{report:?}");
    read_day_on_main(&ctx, 3).await.expect("day 4 reads");

    // PO.DAAC replaces day 4's granule in place.
    place.put(&spec(4, 7)).await;
    let err = read_day_on_main(&ctx, 3)
        .await
        .expect_err("a reference to a replaced granule must not read");
    assert!(err.contains("changed"), "{err}");

    // Without --reprocess the day stays as it was: only day 6 is added.
    let dry = UpdateOptions {
        dry_run: true,
        ..options(8, None)
    };
    let report = pipeline::update(&ctx, &dry).await.expect("dry run");
    assert_eq!(report.days_added, [day(6)]);
    assert!(report.days_reprocessed.is_empty());
    remove_branch(&ctx, &report).await;

    let report = pipeline::update(&ctx, &options(8, changed()))
        .await
        .expect("day 8's run");
    assert_eq!(report.days_added, [day(6)], "{report:?}");
    let dates: Vec<NaiveDate> = report.days_reprocessed.iter().map(|r| r.date).collect();
    assert_eq!(dates, [day(4)], "{report:?}");
    assert!(
        report.days_reprocessed[0].reason.contains("changed"),
        "{report:?}"
    );
    assert!(report.main_moved);
    assert!(
        report.message.contains("re-pointed 1"),
        "{}",
        report.message
    );
    let validation = report.validation.expect("validated");
    assert!(
        validation.values_compared >= 2 * 40 * 90 * 2,
        "{validation:?}"
    );
    read_day_on_main(&ctx, 3).await.expect("day 4 reads again");

    // The store is the one a clean run over the current granules builds.
    for d in 1..=6 {
        clean.put(&spec(d, if d == 4 { 7 } else { 0 })).await;
    }
    let clean_ctx = clean.ctx();
    pipeline::init(&clean_ctx, &options(8, None), day(1), day(6), &vars)
        .await
        .expect("clean init");
    let ours = main_contents(&repo(&ctx).await).await;
    let theirs = main_contents(&repo(&clean_ctx).await).await;
    assert_eq!(ours.state.days, 6);
    assert_eq!(ours.branches, ["main"]);
    assert_eq!(ours.state.group_attributes, theirs.state.group_attributes);
    let strip = |refs: Vec<(String, Vec<u32>, String)>, prefix: String| {
        refs.into_iter()
            .map(|(n, c, r)| (n, c, r.replace(&prefix, "")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(ours.refs, ctx.source.url_prefix()),
        strip(theirs.refs, clean_ctx.source.url_prefix()),
        "re-pointed store differs from a clean build"
    );

    // Nothing changed since: the next run finds nothing to re-point.
    let report = pipeline::update(&ctx, &options(9, changed()))
        .await
        .expect("day 9's run");
    assert!(report.days_reprocessed.is_empty(), "{report:?}");
    assert!(!report.main_moved);
}

/// A dry run keeps its branch; the real runs expect a clean store.
async fn remove_branch(ctx: &Context, report: &Report) {
    let repo = repo(ctx).await;
    let branch = report.branch.as_ref().expect("a dry run names its branch");
    repo.delete_branch(branch).await.unwrap();
}

#[tokio::test]
async fn a_replaced_granule_fails_reads_until_reprocess_changed_repoints_it() {
    let place = Local::new("reprocess-local");
    let clean = Local::new("reprocess-clean");
    replaced_two_days_after_ingest(&place, &clean).await;
}

#[tokio::test]
async fn on_s3_a_new_etag_is_found_and_repointed() {
    let place = OnS3::new("reprocess-s3", "ours").await;
    // The clean build needs its own granules: another moto server.
    let clean = OnS3::new("reprocess-s3-clean", "clean").await;
    replaced_two_days_after_ingest(&place, &clean).await;
}

fn cli(store: &Path, granules: &Path, reprocess: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mursst"))
        .args(["update", "--json", "--lag-days", "0", "--validate", "full"])
        .arg("--store")
        .arg(store)
        .arg("--source")
        .arg(granules)
        .args(["--reprocess", reprocess])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Granules of days `1..=last` in `place`, and a store of days 1..=3 (analysed_sst and
/// mask).
async fn granules_and_store(place: &impl Place, last: u32) -> Context {
    for d in 1..=last {
        place.put(&spec(d, 0)).await;
    }
    let ctx = place.ctx();
    let vars: Vec<String> = vec!["analysed_sst".into(), "mask".into()];
    pipeline::init(&ctx, &options(5, None), day(1), day(3), &vars)
        .await
        .expect("init");
    ctx
}

/// A local store of days 1..=3.
async fn three_days(tag: &str) -> (Local, Context) {
    let place = Local::new(tag);
    let ctx = granules_and_store(&place, 3).await;
    (place, ctx)
}

#[tokio::test]
async fn reprocess_dates_repoints_the_days_asked_for_and_refuses_others() {
    let (place, ctx) = three_days("reprocess-dates").await;
    let before = main_contents(&repo(&ctx).await).await;
    let store = place.tmp.path().join("store");

    let out = cli(&store, &place.granules(), "2025-05-02..2025-05-03");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dates: Vec<&str> = report["days_reprocessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2025-05-02", "2025-05-03"], "{report}");
    assert_eq!(report["main_moved"], true, "{report}");
    assert_eq!(report["days_added"].as_array().unwrap().len(), 0);
    let after = main_contents(&repo(&ctx).await).await;
    assert_eq!(after.refs, before.refs, "the same granules, the same refs");
    assert_eq!(after.state.days, 3);
    assert_ne!(after.state.snapshot, before.state.snapshot);

    let out = cli(&store, &place.granules(), "2025-05-09");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2025-05-09 is not in the store"), "{err}");
    let out = cli(&store, &place.granules(), "yesterday");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A stored day whose granule is gone from the source: named, main unchanged.
    std::fs::remove_file(place.granules().join(synthetic::granule_file_name(day(2)))).unwrap();
    let dates = UpdateOptions {
        reprocess: Some(Reprocess::Dates(vec![day(2)])),
        ..options(5, None)
    };
    let err = pipeline::update(&ctx, &dates).await.unwrap_err();
    assert!(
        matches!(err, PipelineError::NoGranuleToReprocess { date, .. } if date == day(2)),
        "{err}"
    );
    assert_eq!(
        main_contents(&repo(&ctx).await).await.state.snapshot,
        after.state.snapshot
    );
}

/// A replaced granule is inspected anew: a day re-pointed at a granule of another
/// layout becomes native, and back to virtual when the layout returns.
#[tokio::test]
async fn a_repointed_day_moves_between_virtual_and_native() {
    let (place, ctx) = three_days("reprocess-layout").await;
    let day2_native = |contents: &common::store::MainContents| {
        let day2: Vec<bool> = contents
            .refs
            .iter()
            .filter(|(name, coords, _)| name == "analysed_sst" && coords[0] == 1)
            .map(|(_, _, what)| what.starts_with("not virtual"))
            .collect();
        assert!(!day2.is_empty());
        day2.iter().all(|n| *n)
    };
    let mut other = spec(2, 0);
    other.chunks = ChunkLayout::uniform([16, 32]).with(synthetic::DataVar::AnalysedSst, [20, 45]);
    place.put(&other).await;
    let report = pipeline::update(&ctx, &options(5, changed()))
        .await
        .expect("re-point onto a native day");
    assert_eq!(report.days_reprocessed.len(), 1, "{report:?}");
    assert_eq!(report.native[&day(2)].len(), 1, "{report:?}");
    assert!(day2_native(&main_contents(&repo(&ctx).await).await));

    place.put(&spec(2, 0)).await;
    let report = pipeline::update(&ctx, &options(5, changed()))
        .await
        .expect("re-point back to virtual");
    assert_eq!(report.days_reprocessed.len(), 1, "{report:?}");
    assert!(report.native.is_empty(), "{report:?}");
    let contents = main_contents(&repo(&ctx).await).await;
    assert!(
        contents
            .refs
            .iter()
            .all(|(_, _, w)| !w.starts_with("not virtual"))
    );
}

/// The granule of day `d` with every variable chunked unlike the store (so native), and
/// values from `seed`.
fn fully_native(d: u32, seed: u64) -> GranuleSpec {
    let mut s = spec(d, seed);
    s.chunks = ChunkLayout::uniform([16, 32])
        .with(synthetic::DataVar::AnalysedSst, [20, 45])
        .with(synthetic::DataVar::Mask, [20, 45]);
    s
}

/// A `changed` run on day `today` that re-points exactly `days`, each fully native.
async fn materialized(ctx: &Context, today: u32, days: &[u32], what: &str) {
    let report = pipeline::update(ctx, &options(today, changed()))
        .await
        .expect(what);
    let got: Vec<NaiveDate> = report.days_reprocessed.iter().map(|r| r.date).collect();
    let want: Vec<NaiveDate> = days.iter().map(|d| day(*d)).collect();
    assert_eq!(got, want, "{what}: {report:?}");
    for d in &want {
        assert_eq!(report.native[d].len(), 2, "{what}: {report:?}");
    }
    assert!(
        report
            .days_reprocessed
            .iter()
            .all(|r| r.reason.contains("changed")),
        "{what}: {report:?}"
    );
    assert!(report.main_moved, "{what}: {report:?}");
    let validation = report.validation.as_ref().expect("validated");
    assert!(validation.values_compared > 0, "{what}: {validation:?}");
}

/// The encoded chunk (t, 0, 0) of analysed_sst on main.
async fn first_chunk(ctx: &Context, t: u64) -> Vec<u8> {
    let repo = repo(ctx).await;
    let tip = repo.branch_tip("main").await.unwrap();
    let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
    let array = stores.array("analysed_sst").await.unwrap();
    array
        .async_retrieve_encoded_chunk(&[t, 0, 0])
        .await
        .unwrap()
        .expect("a native chunk")
        .to_vec()
}

/// A fully native day holds no reference to pin its granule's version; the commit that
/// materialized it records the version, so `--reprocess changed` still sees the granule
/// replaced again (found behind later commits, each day by its newest record), and
/// nothing when it was not.
async fn fully_native_days_replaced(place: &impl Place) {
    let ctx = granules_and_store(place, 4).await;
    place.put(&fully_native(2, 0)).await;
    place.put(&fully_native(3, 0)).await;
    materialized(&ctx, 5, &[2, 3], "re-point onto fully native days").await;
    let contents = main_contents(&repo(&ctx).await).await;
    let native: Vec<&String> = contents
        .refs
        .iter()
        .filter(|(_, coords, _)| coords[0] == 1 || coords[0] == 2)
        .map(|(_, _, what)| what)
        .collect();
    assert!(!native.is_empty());
    assert!(
        native.iter().all(|w| w.starts_with("not virtual")),
        "{native:?}"
    );
    let before = first_chunk(&ctx, 1).await;

    // Day 4 is added on top: nothing was replaced, and the records are one commit back.
    let report = pipeline::update(&ctx, &options(6, changed()))
        .await
        .expect("day 6's run");
    assert_eq!(report.days_added, [day(4)], "{report:?}");
    assert!(report.days_reprocessed.is_empty(), "{report:?}");

    place.put(&fully_native(3, 3)).await;
    materialized(&ctx, 6, &[3], "day 3 replaced").await;
    place.put(&fully_native(2, 5)).await;
    materialized(&ctx, 6, &[2], "day 2 replaced").await;
    assert_ne!(
        first_chunk(&ctx, 1).await,
        before,
        "day 2 holds the replacement's values"
    );
    // Each day's newest record is its current version: nothing to re-point.
    let report = pipeline::update(&ctx, &options(6, changed()))
        .await
        .expect("a run with nothing replaced");
    assert!(report.days_reprocessed.is_empty(), "{report:?}");
    assert!(!report.main_moved, "{report:?}");
}

#[tokio::test]
async fn replaced_fully_native_days_are_found_by_their_recorded_version() {
    let place = Local::new("reprocess-native");
    fully_native_days_replaced(&place).await;
}

#[tokio::test]
async fn on_s3_replaced_fully_native_days_are_found_by_their_recorded_etag() {
    let place = OnS3::new("reprocess-native-s3", "native").await;
    fully_native_days_replaced(&place).await;
}
