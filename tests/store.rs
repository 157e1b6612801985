//! The store end to end on the embedded default: local repository, local granules,
//! the same pipeline code the Lambdas run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use common::TempDir;
use mursst::aws::AwsSettings;
use mursst::objects::S3Access;
use mursst::pipeline::{self, Context, PipelineError, UpdateOptions};
use mursst::store::create::{self, GridChunks};
use mursst::store::prepared::PreparedGranule;
use mursst::store::writer;
use mursst::store::{RepoLocation, SessionStores, StoreError, StoreRepo, StoreState};
use mursst::synthetic::{self, ChunkLayout, DataVar, GranuleSpec};
use mursst::validate::{self, Rule, ValidateMode, ValidationError};

const LAT: usize = 60;
const LON: usize = 120;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

/// A small MUR-shaped granule with several chunks per variable and partial edge chunks.
fn spec(date: NaiveDate) -> GranuleSpec {
    let mut s = GranuleSpec::small(date, LAT, LON);
    // Open ocean in the tropics: every chunk holds different values.
    s.lat_start = 8000;
    s.lon_start = 10000;
    s.chunks = ChunkLayout::uniform([25, 50])
        .with(DataVar::Mask, [30, 70])
        .with(DataVar::SeaIceFraction, [30, 70]);
    s
}

fn write(dir: &Path, specs: impl IntoIterator<Item = GranuleSpec>) {
    for s in specs {
        synthetic::write_granule(dir, &s).expect("write granule");
    }
}

struct Fixture {
    _tmp: TempDir,
    granules: PathBuf,
    store: PathBuf,
}

impl Fixture {
    fn new(tag: &str, days: impl IntoIterator<Item = u32>) -> Self {
        let tmp = TempDir::new(tag);
        let granules = tmp.path().join("granules");
        write(&granules, days.into_iter().map(|d| spec(day(d))));
        Self {
            store: tmp.path().join("store"),
            granules,
            _tmp: tmp,
        }
    }

    fn ctx(&self) -> Context {
        Context::local(&self.store, &self.granules)
    }

    async fn repo(&self) -> StoreRepo {
        StoreRepo::open(
            &RepoLocation::Local(self.store.clone()),
            &AwsSettings::default(),
            &S3Access::default(),
        )
        .await
        .expect("open store")
    }

    async fn main_state(&self) -> (String, StoreState) {
        let repo = self.repo().await;
        let tip = repo.branch_tip("main").await.unwrap();
        let state = repo
            .state_at(&tip)
            .await
            .unwrap()
            .expect("main has a store");
        (tip.to_string(), state)
    }

    async fn init(&self, start: u32, end: u32) -> Result<pipeline::Report, PipelineError> {
        pipeline::init(
            &self.ctx(),
            &options(),
            day(start),
            day(end),
            &default_variables(),
        )
        .await
    }

    /// The given days' granules as generate-refs prepares them, in date order.
    async fn prepare(&self, days: &[u32]) -> Vec<PreparedGranule> {
        let granules = self.ctx().source.list().await.unwrap();
        let mut prepared = Vec::new();
        for g in granules
            .iter()
            .filter(|g| days.contains(&chrono::Datelike::day(&g.date)))
        {
            let (p, _, _) = pipeline::prepare_granule(g, &S3Access::default(), &Default::default())
                .await
                .unwrap();
            prepared.push(p);
        }
        prepared
    }

    async fn update(&self) -> Result<pipeline::Report, PipelineError> {
        pipeline::update(&self.ctx(), &options()).await
    }
}

fn options() -> UpdateOptions {
    UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Full,
        ..Default::default()
    }
}

fn default_variables() -> Vec<String> {
    pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[tokio::test]
async fn init_then_update_appends_and_a_second_run_adds_nothing() {
    let fx = Fixture::new("append", 1..=6);
    let report = fx.init(1, 3).await.expect("init");
    assert_eq!(report.days_added, vec![day(1), day(2), day(3)]);
    assert!(report.main_moved);
    let rules = &report.validation.as_ref().unwrap().rules;
    assert!(rules.contains(&Rule::DataEqualToSource), "{rules:?}");
    assert!(
        !rules.contains(&Rule::StopAttributesChanged),
        "nothing to compare on init"
    );

    let report = fx.update().await.expect("update");
    assert_eq!(report.days_added, vec![day(4), day(5), day(6)]);
    assert_eq!(report.store_first_day, Some(day(1)));
    assert_eq!(report.store_last_day, Some(day(6)));
    // 324-style chunk grids: 3×3 chunks for the int16 variables, 2×2 for the int8 ones.
    assert_eq!(report.refs, 3 * (9 + 9 + 4 + 4));
    let v = report.validation.as_ref().unwrap();
    assert_eq!(v.chunks_compared, 3 * (9 + 9 + 4 + 4));
    assert_eq!(v.values_compared, 3 * 4 * (LAT * LON) as u64);
    assert!(v.rules.contains(&Rule::StopAttributesChanged));

    let (tip, state) = fx.main_state().await;
    assert_eq!(Some(tip.clone()), report.new_snapshot);
    assert_eq!(state.days, 6);
    assert_eq!(state.last_day, Some(day(6)));
    assert_eq!(
        state.group_attributes["start_time"],
        serde_json::json!("20250101T090000Z")
    );
    assert_eq!(
        state.group_attributes["stop_time"],
        serde_json::json!("20250106T090000Z")
    );
    for dropped in ["date_created", "comment", "source", "platform", "sensor"] {
        assert!(!state.group_attributes.contains_key(dropped), "{dropped}");
    }
    let mut arrays: Vec<&String> = state.schema.arrays.keys().collect();
    arrays.sort();
    assert_eq!(
        arrays,
        [
            "analysed_sst",
            "analysis_error",
            "lat",
            "lon",
            "mask",
            "sea_ice_fraction",
            "time"
        ]
    );
    assert_eq!(fx.repo().await.list_branches().await.unwrap(), ["main"]);

    let again = fx.update().await.expect("second update");
    assert!(again.days_added.is_empty(), "{again:?}");
    assert_eq!(again.message, "nothing new to add");
    assert_eq!(fx.main_state().await.0, tip, "main must not move");
}

#[tokio::test]
async fn a_missing_day_never_enters_the_time_axis() {
    let fx = Fixture::new("gap", [1, 2, 4, 5]);
    let report = fx.init(1, 5).await.expect("init");
    assert_eq!(report.days_added, vec![day(1), day(2)]);
    assert_eq!(report.gap_at, Some(day(3)));
    let report = fx.update().await.expect("update");
    assert!(report.days_added.is_empty());
    assert_eq!(report.gap_at, Some(day(3)));
    assert!(report.message.contains("2025-01-03"), "{}", report.message);
    // Once the day arrives, the rest follows.
    write(&fx.granules, [spec(day(3))]);
    let report = fx.update().await.expect("update");
    assert_eq!(report.days_added, vec![day(3), day(4), day(5)]);
}

#[tokio::test]
async fn schema_check_compares_what_decoding_depends_on() {
    let fx = Fixture::new("schema", 1..=2);
    fx.init(1, 2).await.expect("init");
    let mut level6 = spec(day(3));
    level6.deflate_level = 6;
    let mut no_shuffle = spec(day(4));
    no_shuffle.shuffle = false;
    write(&fx.granules, [level6, no_shuffle]);

    let report = fx.update().await.expect("update");
    assert_eq!(report.days_added, vec![day(3), day(4)]);
    assert!(report.rejected.is_empty(), "{report:?}");
    // A different deflate level decodes identically: referenced. A missing shuffle
    // changes decoding: every variable materialized, saying why; validated in full.
    assert!(!report.native.contains_key(&day(3)), "{report:?}");
    let native = &report.native[&day(4)];
    assert_eq!(native.len(), 4, "{native:?}");
    for why in native.values() {
        assert!(
            why.contains("codecs") && why.contains("numcodecs.shuffle"),
            "{why}"
        );
    }
    assert!(report.validation.unwrap().values_compared > 0);
    assert_eq!(fx.main_state().await.1.days, 4);
}

#[tokio::test]
async fn schema_check_rejects_a_shifted_grid_and_missing_variables() {
    type Tweak = Box<dyn Fn(&mut GranuleSpec)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("values", Box::new(|s| s.lat_start = 1)),
        (
            "missing from the granule",
            Box::new(|s| s.variables.retain(|v| *v != DataVar::Mask)),
        ),
    ];
    for (field, tweak) in cases {
        let fx = Fixture::new("reject", 1..=1);
        fx.init(1, 1).await.expect("init");
        let before = fx.main_state().await.0;
        let mut bad = spec(day(2));
        tweak(&mut bad);
        write(&fx.granules, [bad]);
        let report = fx.update().await.expect("update");
        assert!(report.days_added.is_empty(), "{field}: {report:?}");
        assert_eq!(report.rejected.len(), 1, "{field}: {report:?}");
        assert!(
            report.rejected[0].reason.contains(field),
            "{field}: {:?}",
            report.rejected
        );
        assert_eq!(
            fx.main_state().await.0,
            before,
            "{field}: main must not move"
        );
    }
}

/// `init` over days whose chunk layout changes mid-way (as on 2023-09-04): the day
/// chunked otherwise is materialized onto the store's grid (that variable only, saying
/// why), the others referenced, and every value validated against its source.
#[tokio::test]
async fn init_over_a_layout_change_materializes_the_misfit_variable() {
    let fx = Fixture::new("init-mixed", 1..=2);
    let mut changed = spec(day(3));
    changed.chunks = changed.chunks.with(DataVar::AnalysedSst, [20, 50]);
    write(&fx.granules, [changed, spec(day(4))]);
    let report = fx.init(1, 4).await.expect("init");
    assert_eq!(
        report.days_added,
        [day(1), day(2), day(3), day(4)],
        "{report:?}"
    );
    assert!(report.rejected.is_empty(), "{report:?}");
    let native = &report.native;
    assert_eq!(native.keys().collect::<Vec<_>>(), [&day(3)], "{report:?}");
    let why = &native[&day(3)]["analysed_sst"];
    assert!(
        why.contains("chunk_shape") && why.contains("[1, 20, 50]"),
        "{why}"
    );
    assert_eq!(native[&day(3)].len(), 1, "only analysed_sst: {native:?}");
    assert!(report.materialized.chunks_decoded > 0, "{report:?}");
    let validation = report.validation.expect("validated");
    assert_eq!(validation.values_compared, 4 * 4 * (LAT * LON) as u64);

    let repo = fx.repo().await;
    let contents = common::store::main_contents(&repo).await;
    assert_eq!(
        (contents.state.days, contents.state.last_day),
        (4, Some(day(4)))
    );
    contents.assert_native_where(|name, c| name == "analysed_sst" && c[0] == 2);
    let tip = repo.branch_tip("main").await.unwrap();
    let record = repo.commit_record(&tip).await.unwrap().unwrap();
    assert!(
        record.native[&day(3)].contains_key("analysed_sst"),
        "{record:?}"
    );
}

/// A store whose first day is one of the record's quirks (deflate listed before
/// shuffle, or no shuffle) still declares the producer's codecs, shuffle then deflate:
/// the quirky first day is materialized, and the ordinary days after it stay virtual.
#[tokio::test]
async fn a_quirky_first_day_is_materialized_onto_the_producer_codecs() {
    for (tag, quirk) in [
        (
            "deflate-first",
            (|s: &mut GranuleSpec| s.deflate_first = true) as fn(&mut GranuleSpec),
        ),
        ("no-shuffle", |s| s.shuffle = false),
    ] {
        let fx = Fixture::new(tag, 2..=3);
        let mut first = spec(day(1));
        quirk(&mut first);
        write(&fx.granules, [first]);
        let report = fx.init(1, 3).await.expect("init");
        assert_eq!(report.days_added, [day(1), day(2), day(3)], "{tag}");
        assert_eq!(
            report.native.keys().collect::<Vec<_>>(),
            [&day(1)],
            "{tag}: {report:?}"
        );
        assert_eq!(
            report.native[&day(1)].len(),
            4,
            "{tag}: {:?}",
            report.native
        );
        assert!(report.validation.unwrap().values_compared > 0, "{tag}");
        let (_, state) = fx.main_state().await;
        for name in default_variables() {
            let chain = state.schema.arrays[&name].codecs.to_string();
            assert!(
                chain.find("numcodecs.shuffle") < chain.find("numcodecs.zlib")
                    && chain.contains("numcodecs.shuffle"),
                "{tag}: {name}: {chain}"
            );
        }
    }
}

/// Make `date`'s granule a new version as PO.DAAC's in-place replacement does (a later
/// modification time); its path.
fn replace_in_place(fx: &Fixture, date: NaiveDate) -> PathBuf {
    let path = fx.granules.join(synthetic::granule_file_name(date));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(120))
        .unwrap();
    path
}

/// A store of day 1, and day 2 with analysed_sst chunked unlike the store (so it is
/// native), discovered and indexed: the context, main's snapshot before, and the write
/// step's input.
async fn native_day_to_write(fx: &Fixture) -> (Context, String, pipeline::WriteInput) {
    fx.init(1, 1).await.expect("init");
    let before = fx.main_state().await.0;
    let mut other = spec(day(2));
    other.chunks = other.chunks.with(DataVar::AnalysedSst, [20, 50]);
    write(&fx.granules, [other]);
    let ctx = fx.ctx();
    let input = pipeline::DiscoverInput {
        lag_days: Some(0),
        ..Default::default()
    };
    let found = pipeline::discover(&ctx, input).await.unwrap();
    let mut refs = Vec::new();
    for granule in found.granules {
        let input = pipeline::GenerateRefsInput {
            run: found.run.clone(),
            granule,
        };
        refs.push(pipeline::generate_refs(&ctx, input).await.unwrap());
    }
    let run = found.run;
    (ctx, before, pipeline::WriteInput { run, refs })
}

/// The write ⇄ materialize loop is bounded by the write itself: a native day asked for
/// again and again without usable chunks (here, the materialize step never runs) stops
/// the write after `NATIVE_ROUNDS` asks, naming the day; nothing was committed.
#[tokio::test]
async fn a_write_that_never_gets_its_native_chunks_gives_up() {
    let fx = Fixture::new("native-loop", 1..=1);
    let (ctx, before, input) = native_day_to_write(&fx).await;
    for round in 1..=pipeline::NATIVE_ROUNDS {
        let write = pipeline::write_branch(&ctx, input.clone()).await.unwrap();
        assert_eq!(write.materialize.len(), 1, "round {round}: {write:?}");
        assert_eq!(write.materialize[0].date, day(2));
    }
    let err = pipeline::write_branch(&ctx, input).await.unwrap_err();
    assert_eq!(err.kind(), pipeline::ErrorKind::Failed, "{err}");
    assert!(err.to_string().contains(&day(2).to_string()), "{err}");
    assert_eq!(fx.main_state().await.0, before, "main must not move");
}

/// A granule replaced between indexing and materializing (PO.DAAC replaces in place):
/// the materialize step refuses to decode it at the old offsets, naming it, as a final
/// failure of this run (retrying the step would read the same stale index); main stays.
#[tokio::test]
async fn a_granule_replaced_before_materializing_fails_the_run_naming_it() {
    let fx = Fixture::new("native-changed", 1..=1);
    let (ctx, before, input) = native_day_to_write(&fx).await;
    let run = input.run.clone();
    let write = pipeline::write_branch(&ctx, input).await.unwrap();
    let job = write.materialize[0].clone();
    let path = replace_in_place(&fx, day(2));
    let err = pipeline::materialize(&ctx, pipeline::MaterializeInput { run, job })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pipeline::ErrorKind::Failed, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("changed"),
        "{msg}"
    );
    assert_eq!(fx.main_state().await.0, before, "main must not move");
}

/// A store chunked unlike any of its granules (`--chunks`): every variable of every
/// day materialized, reading back as the sources hold it.
#[tokio::test]
async fn init_onto_a_configured_grid_materializes_every_day() {
    let fx = Fixture::new("init-grid", 1..=3);
    let options = UpdateOptions {
        chunks: Some(GridChunks::All(vec![16, 45])),
        ..options()
    };
    let report = pipeline::init(&fx.ctx(), &options, day(1), day(3), &default_variables())
        .await
        .expect("init");
    assert_eq!(report.days_added.len(), 3);
    assert_eq!(report.native.len(), 3, "{report:?}");
    assert!(report.native.values().all(|vars| vars.len() == 4));
    assert_eq!(
        report.validation.unwrap().values_compared,
        3 * 4 * (LAT * LON) as u64
    );
    let (_, state) = fx.main_state().await;
    assert_eq!(state.schema.arrays["mask"].chunk_shape(), [1, 16, 45]);
    assert!(report.materialized.peak_buffer_bytes > 0);
    // The next day, chunked like its granules, not like the store: materialized too.
    write(&fx.granules, [spec(day(4))]);
    let report = fx.update().await.expect("update");
    assert_eq!(report.native[&day(4)].len(), 4, "{report:?}");
}

#[tokio::test]
async fn dry_run_writes_the_branch_but_leaves_main() {
    let fx = Fixture::new("dry", 1..=3);
    fx.init(1, 1).await.expect("init");
    let (before, _) = fx.main_state().await;
    let report = pipeline::update(
        &fx.ctx(),
        &UpdateOptions {
            dry_run: true,
            ..options()
        },
    )
    .await
    .expect("dry run");
    assert_eq!(report.days_added, vec![day(2), day(3)]);
    assert!(!report.main_moved);
    let branch = report.branch.clone().unwrap();
    assert!(branch.starts_with("add_time_"), "{branch}");
    let repo = fx.repo().await;
    assert_eq!(fx.main_state().await.0, before);
    assert_eq!(
        repo.branch_tip(&branch).await.unwrap().to_string(),
        report.new_snapshot.unwrap()
    );
}

/// What [`write_branch`] made.
struct BranchWrite {
    repo: StoreRepo,
    base: icechunk::format::SnapshotId,
    before: StoreState,
    prepared: Vec<PreparedGranule>,
    tip: icechunk::format::SnapshotId,
}

/// Prepare `days` and write them on a fresh branch from main, as `update` does.
async fn write_branch(
    fx: &Fixture,
    days: &[u32],
    tamper: impl Fn(&mut Vec<PreparedGranule>),
) -> BranchWrite {
    let repo = fx.repo().await;
    let base = repo.branch_tip("main").await.unwrap();
    let before = repo.state_at(&base).await.unwrap().unwrap();
    let mut prepared = fx.prepare(days).await;
    tamper(&mut prepared);
    let branch = format!("add_time_test_{}", days[0]);
    let stores = SessionStores::new(repo.start_branch(&branch, &base).await.unwrap()).await;
    let summary = writer::write_days(
        &stores,
        Some(&before),
        &prepared,
        &Default::default(),
        "test",
        Default::default(),
    )
    .await
    .expect("write branch");
    let tip = icechunk::format::SnapshotId::try_from(summary.snapshot.as_str()).unwrap();
    BranchWrite {
        repo,
        base,
        before,
        prepared,
        tip,
    }
}

#[tokio::test]
async fn validation_catches_a_reference_to_the_wrong_bytes() {
    let fx = Fixture::new("badref", 1..=2);
    fx.init(1, 1).await.expect("init");
    // Swap two chunks' references of one variable: every reference still points into the
    // right granule, only the data through the branch is wrong.
    let BranchWrite {
        repo,
        before,
        prepared,
        tip,
        ..
    } = write_branch(&fx, &[2], |p| {
        let var = p[0]
            .refs
            .variables
            .iter_mut()
            .find(|v| v.name == "analysed_sst")
            .unwrap();
        // Chunks (0, 0) and (1, 1) of the 3×3 grid: different rows and columns.
        let a = var.chunks[0].1.clone();
        var.chunks[0].1 = var.chunks[4].1.clone();
        var.chunks[4].1 = a;
    })
    .await;
    let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
    let after = repo.state_at(&tip).await.unwrap().unwrap();
    // Metadata rules alone pass (the references are what was indexed) ...
    validate::validate(
        &stores,
        Some(&before),
        &after,
        &prepared,
        ValidateMode::Metadata,
        0,
        &S3Access::default(),
    )
    .await
    .expect("metadata rules pass");
    // ... but the data comparison against libhdf5 does not.
    let err = validate::validate(
        &stores,
        Some(&before),
        &after,
        &prepared,
        ValidateMode::Full,
        0,
        &S3Access::default(),
    )
    .await
    .unwrap_err();
    match err {
        ValidationError::Failed { rule, detail } => {
            assert_eq!(rule, Rule::DataEqualToSource);
            assert!(detail.contains("analysed_sst"), "{detail}");
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn main_moves_only_if_it_is_still_where_the_run_started() {
    let fx = Fixture::new("cas", 1..=3);
    fx.init(1, 1).await.expect("init");
    let BranchWrite {
        repo, base, tip, ..
    } = write_branch(&fx, &[2], |_| {}).await;
    // Meanwhile another run appends day 2 and 3 and moves main.
    let other = fx.update().await.expect("concurrent update");
    assert!(other.main_moved);
    let moved = fx.main_state().await.0;
    let err = repo.move_main(&tip, &base, "b").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        fx.main_state().await.0,
        moved,
        "main must keep the other run's snapshot"
    );
}

#[tokio::test]
async fn a_corrupt_granule_fails_naming_it_and_main_stays() {
    let fx = Fixture::new("corrupt", 1..=2);
    fx.init(1, 1).await.expect("init");
    let before = fx.main_state().await.0;
    let path = fx.granules.join(synthetic::granule_file_name(day(2)));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = fx.update().await.unwrap_err().to_string();
    assert!(err.contains(&synthetic::granule_file_name(day(2))), "{err}");
    assert_eq!(fx.main_state().await.0, before);
}

/// Files that are not granules where a granule should be: each stops the run with an
/// error naming the file, and main stays where it was.
#[tokio::test]
async fn a_corpus_of_broken_files_fails_naming_each_and_main_stays() {
    let html = b"<!DOCTYPE html><html><head><title>Earthdata Login</title></head>\
        <body>Please log in</body></html>"
        .to_vec();
    let fx = Fixture::new("broken", 1..=2);
    fx.init(1, 1).await.expect("init");
    let before = fx.main_state().await.0;
    let path = fx.granules.join(synthetic::granule_file_name(day(2)));
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length object", Vec::new()),
        ("an HTML page instead of the file", html),
        ("the superblock only", good[..64].to_vec()),
        ("the first 4 KiB", good[..4096].to_vec()),
        ("all but the last byte", good[..good.len() - 1].to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let err = fx.update().await.expect_err(what).to_string();
        assert!(
            err.contains(&synthetic::granule_file_name(day(2))),
            "{what}: {err}"
        );
        assert_eq!(fx.main_state().await.0, before, "{what}: main moved");
    }
}

fn mursst() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mursst"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn cli_update(fx: &Fixture) -> Command {
    let mut cmd = mursst();
    cmd.args([
        "update",
        "--json",
        "--lag-days",
        "0",
        "--validate",
        "full",
        "--store",
    ])
    .arg(&fx.store)
    .arg("--source")
    .arg(&fx.granules);
    cmd
}

#[tokio::test]
async fn a_run_killed_at_any_point_leaves_main_whole_and_the_next_run_completes() {
    let fx = Fixture::new("kill", 1..=8);
    fx.init(1, 2).await.expect("init");
    let (start, _) = fx.main_state().await;
    // Time a full run (a dry run does all the work but moving main) to spread the kills
    // over its whole length.
    let t0 = std::time::Instant::now();
    let out = common::output(cli_update(&fx).arg("--dry-run"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = t0.elapsed();
    let branches_before = fx.repo().await.list_branches().await.unwrap().len();
    let mut moved = false;
    for tenth in 1..=12u32 {
        let mut child = common::spawn(&mut cli_update(&fx));
        std::thread::sleep(run * tenth / 10);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let (tip, state) = fx.main_state().await;
        // main is either where it was or at the complete, validated append.
        if tip == start {
            assert_eq!(state.days, 2, "after kill at {tenth}/10 ({status})");
        } else {
            assert_eq!(state.days, 8, "after kill at {tenth}/10 ({status})");
            moved = true;
            break;
        }
    }
    // Killed runs leave their temporary branches behind, never a changed main.
    let branches = fx.repo().await.list_branches().await.unwrap();
    assert!(
        branches.len() > branches_before || moved,
        "no kill landed mid-run: {branches:?}"
    );

    let out = common::output(&mut cli_update(&fx));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, state) = fx.main_state().await;
    assert_eq!(state.days, 8);
    assert_eq!(state.last_day, Some(day(8)));
    let added = report["days_added"].as_array().unwrap().len();
    assert_eq!(added, if moved { 0 } else { 6 }, "{report}");
}

#[tokio::test]
async fn a_granule_changed_after_indexing_is_detected_on_read() {
    let fx = Fixture::new("changed", 1..=2);
    fx.init(1, 1).await.expect("init");
    let BranchWrite {
        repo,
        before,
        prepared,
        tip,
        ..
    } = write_branch(&fx, &[2], |_| {}).await;
    // PO.DAAC replaces granules in place: the references recorded the old version.
    replace_in_place(&fx, day(2));
    let stores = SessionStores::new(repo.readonly_at(&tip).await.unwrap()).await;
    let after = repo.state_at(&tip).await.unwrap().unwrap();
    let err = validate::validate(
        &stores,
        Some(&before),
        &after,
        &prepared,
        ValidateMode::Sample,
        0,
        &S3Access::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("through the branch"), "{err}");
    assert!(
        err.contains("checksum of the object") && err.contains("changed"),
        "{err}"
    );
}

/// What the reader found in a granule, altered where no synthetic granule goes (its
/// storage type, its fill value): the schema check refuses it naming the field, before
/// anything is written. Variables beyond the store's are ignored: real granules carry
/// six data variables and the store keeps the ones it was created with.
#[tokio::test]
async fn a_wrong_dtype_or_fill_value_is_refused_and_extra_variables_are_ignored() {
    let fx = Fixture::new("dtype", 1..=2);
    fx.init(1, 1).await.expect("init");
    let (_, state) = fx.main_state().await;
    let prepared = fx.prepare(&[2]).await.remove(0);
    let extra: Vec<&str> = prepared
        .refs
        .variables
        .iter()
        .map(|v| v.name.as_str())
        .filter(|n| ["dt_1km_data", "sst_anomaly"].contains(n))
        .collect();
    assert_eq!(extra.len(), 2, "the granule has variables the store lacks");
    mursst::store::schema::check(&prepared.refs, &prepared.coordinates, &state.schema)
        .expect("extra variables are not a misfit");
    assert!(!state.schema.arrays.contains_key("sst_anomaly"));

    type Tweak = fn(&mut mursst::refs::Variable);
    let cases: [(&str, &str, Tweak); 3] = [
        ("analysed_sst", "data_type", |v| {
            v.dtype = mursst::refs::DataType::Int32
        }),
        ("mask", "data_type", |v| {
            v.dtype = mursst::refs::DataType::Float32
        }),
        ("analysis_error", "fill_value", |v| {
            v.fill_value = Some(serde_json::json!(0))
        }),
    ];
    for (name, field, tweak) in cases {
        let mut bad = prepared.clone();
        let var = bad
            .refs
            .variables
            .iter_mut()
            .find(|v| v.name == name)
            .unwrap();
        tweak(var);
        let err = mursst::store::schema::check(&bad.refs, &bad.coordinates, &state.schema)
            .expect_err(field)
            .to_string();
        assert!(
            err.contains(field)
                && err.contains(name)
                && err.contains(&synthetic::granule_file_name(day(2))),
            "{name} {field}: {err}"
        );
    }
}

/// A store of the full MUR grid gets today's producer chunking unless told otherwise, so
/// the older eras are materialized onto it and daily appends stay virtual.
#[tokio::test]
async fn a_full_grid_store_defaults_to_the_producer_chunks() {
    let fx = Fixture::new("producer", 1..=1);
    let mut first = fx.prepare(&[1]).await.remove(0);
    for v in first.refs.variables.iter_mut() {
        if v.dimensions.len() == 3 {
            v.shape = vec![1, 17999, 36000];
            v.chunk_shape = vec![1, 1447, 2895];
        }
    }
    let vars = default_variables();
    let schema = create::new_schema(&first, &vars, None).unwrap();
    for name in &vars {
        assert_eq!(schema.arrays[name].chunk_shape(), [1, 1023, 2047], "{name}");
    }
    let schema =
        create::new_schema(&first, &vars, Some(&GridChunks::All(vec![3600, 7200]))).unwrap();
    assert_eq!(schema.arrays["mask"].chunk_shape(), [1, 3600, 7200]);
    // By variable: one named, `*` for the rest; without `*` the rest keep the default.
    let by = |json: serde_json::Value| -> GridChunks { serde_json::from_value(json).unwrap() };
    let per = by(serde_json::json!({"mask": [1447, 2895], "*": [3600, 7200]}));
    let schema = create::new_schema(&first, &vars, Some(&per)).unwrap();
    assert_eq!(schema.arrays["mask"].chunk_shape(), [1, 1447, 2895]);
    assert_eq!(
        schema.arrays["sea_ice_fraction"].chunk_shape(),
        [1, 3600, 7200]
    );
    let per = by(serde_json::json!({"mask": [1447, 2895]}));
    let schema = create::new_schema(&first, &vars, Some(&per)).unwrap();
    assert_eq!(schema.arrays["analysed_sst"].chunk_shape(), [1, 1023, 2047]);
    let bad = by(serde_json::json!({"mask": [1447]}));
    let err = create::new_schema(&first, &vars, Some(&bad))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mask") && err.contains("two positive sizes"),
        "{err}"
    );
    // Another grid keeps its first day's chunking.
    let small = fx.prepare(&[1]).await.remove(0);
    let schema = create::new_schema(&small, &vars, None).unwrap();
    assert_eq!(schema.arrays["mask"].chunk_shape(), [1, 30, 70]);
}
