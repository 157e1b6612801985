//! The backfill's steps as its state machine chains them, over more days than one
//! commit holds: every batch bounded, the result the same store a daily build makes.

mod common;

use chrono::NaiveDate;
use mursst::granule::Granule;
use mursst::pipeline::{
    self, Context, CreateSpec, DiscoverInput, GenerateRefsBatch, MaterializeInput, MergeInput,
    ValidateBatchInput, WriteBatchInput,
};
use mursst::store::create::GridChunks;
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

fn day(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 12, 1).unwrap() + chrono::Days::new(i)
}

const DAYS: u64 = 2 * pipeline::BATCH_DAYS + 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_in_batches_builds_the_store_a_single_init_builds() {
    let tmp = common::TempDir::new("backfill");
    let granules = tmp.path().join("granules");
    for i in 0..DAYS {
        let mut spec = GranuleSpec::small(day(i), 12, 24);
        spec.chunks = ChunkLayout::uniform([6, 12]);
        synthetic::write_granule(&granules, &spec).unwrap();
    }
    let mut ctx = Context::local(tmp.path().join("store"), &granules);
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    let variables: Vec<String> = pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let input = DiscoverInput {
        lag_days: Some(0),
        validate: Some(ValidateMode::Sample),
        manifest: true,
        create: Some(CreateSpec {
            start: day(0),
            end: day(DAYS - 1),
            variables: variables.clone(),
            chunks: None,
            spec_version: None,
        }),
        ..Default::default()
    };
    let done = backfill(&ctx, input).await;
    assert_eq!(done.manifest.days, DAYS);
    assert_eq!(done.manifest.batches, [0, 1, 2]);
    for (i, out) in done.batches.iter().enumerate() {
        assert_eq!(
            out.write.days_after,
            ((i as u64 + 1) * pipeline::BATCH_DAYS).min(DAYS),
            "batch {i}"
        );
    }
    assert!(
        done.merged
            .message
            .contains(&format!("added {DAYS} day(s)")),
        "{:?}",
        done.merged
    );

    // The same days through one init: the same store.
    let other = tmp.path().join("init-store");
    let mut ctx2 = Context::local(&other, &granules);
    ctx2.artifacts = ctx.artifacts.clone();
    let options = pipeline::UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Metadata,
        ..Default::default()
    };
    pipeline::init(&ctx2, &options, day(0), day(DAYS - 1), &variables)
        .await
        .unwrap();
    let state = |dir: std::path::PathBuf| async move {
        let loc = RepoLocation::Local(dir);
        let repo = StoreRepo::open(&loc, &Default::default(), &Default::default())
            .await
            .unwrap();
        let tip = repo.branch_tip("main").await.unwrap();
        let branches = repo.list_branches().await.unwrap();
        let state = repo.state_at(&tip).await.unwrap().unwrap();
        let refs = common::store::all_refs(&repo, &tip, &state).await;
        (state, branches, refs)
    };
    let (a, branches_a, refs_a) = state(tmp.path().join("store")).await;
    let (b, _, refs_b) = state(other).await;
    assert_eq!(
        refs_a.len() as u64,
        DAYS * 4 * 4,
        "2 × 2 chunks per array and day"
    );
    assert!(
        refs_a.iter().all(|r| r.2.contains(".nc ")),
        "all virtual: {:?}",
        refs_a[0]
    );
    assert_eq!(refs_a, refs_b, "every chunk references the same bytes");
    assert_eq!(branches_a, ["main"], "the backfill's branch is gone");
    assert_eq!(
        (a.days, a.first_day, a.last_day),
        (b.days, b.first_day, b.last_day)
    );
    assert_eq!(a.group_attributes, b.group_attributes);
    assert_eq!(a.schema.arrays, b.schema.arrays);
    assert_eq!(a.schema.coordinates, b.schema.coordinates);
}

/// What a backfill's states did.
struct Backfilled {
    manifest: pipeline::Manifest,
    batches: Vec<pipeline::WriteBatchOutput>,
    merged: pipeline::MergeOutput,
}

/// The backfill machine's states in order: discover (a manifest), the Distributed Map
/// of generate-refs batches, the commit loop (a repeated batch must change nothing),
/// every batch validated against the final tip, one merge.
async fn backfill(ctx: &Context, input: DiscoverInput) -> Backfilled {
    let found = pipeline::discover(ctx, input).await.unwrap();
    assert!(
        found.granules.is_empty(),
        "the granules travel in the manifest"
    );
    let manifest = found.manifest.clone().unwrap();
    let run = found.run.clone();
    let items: Vec<Granule> =
        serde_json::from_slice(&std::fs::read(&manifest.key).unwrap()).unwrap();
    assert_eq!(items.len() as u64, manifest.days);
    for batch in items.chunks(16) {
        let out = pipeline::generate_refs_batch(
            ctx,
            GenerateRefsBatch {
                run: run.clone(),
                items: batch.to_vec(),
            },
        )
        .await
        .unwrap();
        assert_eq!(out.granules, batch.len() as u64);
    }
    let commit = |batch| {
        pipeline::write_batch(
            ctx,
            WriteBatchInput {
                run: run.clone(),
                batch,
            },
        )
    };
    let mut batches = Vec::new();
    let mut next = 0;
    let mut materialized = 0;
    loop {
        let out = commit(next).await.unwrap();
        assert!(!out.write.reused, "batch {next}");
        if !out.write.materialize.is_empty() {
            // The machine's materialize Map, then the same batch again.
            assert_eq!(out.next_batch, next, "{out:?}");
            assert!(!out.done);
            for job in out.write.materialize {
                let input = MaterializeInput {
                    run: run.clone(),
                    job,
                };
                let made = pipeline::materialize(ctx, input.clone()).await.unwrap();
                assert!(!made.reused && made.chunks > 0, "{made:?}");
                let again = pipeline::materialize(ctx, input).await.unwrap();
                assert!(again.reused, "a repeated materialize reuses its chunks");
                materialized += 1;
            }
            continue;
        }
        next = out.next_batch;
        let done = out.done;
        batches.push(out);
        if done {
            break;
        }
    }
    let native_days: usize = batches.iter().map(|b| b.write.native.len()).sum();
    assert_eq!(
        materialized, native_days,
        "each native day materialized once"
    );
    let last = batches.last().unwrap().write.clone();
    let again = commit(batches.len() as u64 / 2).await.unwrap();
    assert!(again.write.reused);
    assert_eq!(
        again.write.snapshot, last.snapshot,
        "a repeated batch adds no commit"
    );
    for batch in &manifest.batches {
        let report = pipeline::validate_batch(
            ctx,
            ValidateBatchInput {
                run: run.clone(),
                batch: *batch,
                snapshot: last.snapshot.clone(),
            },
        )
        .await
        .unwrap();
        assert!(report.chunks_compared > 0, "batch {batch}: {report:?}");
    }
    let merged = pipeline::merge(ctx, MergeInput { run, write: last })
        .await
        .unwrap();
    assert!(merged.main_moved, "{merged:?}");
    Backfilled {
        manifest,
        batches,
        merged,
    }
}

/// The full record's way: a store on today's grid, the older era's days materialized in
/// small commits (`batch_days`), validated like the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_materializes_the_days_of_another_layout_in_small_commits() {
    let tmp = common::TempDir::new("backfill-native");
    let granules = tmp.path().join("granules");
    for i in 0..7 {
        let mut spec = GranuleSpec::small(day(i), 12, 24);
        // An older era first: its int8 variables chunked otherwise.
        spec.chunks = match i < 4 {
            true => ChunkLayout::uniform([6, 12])
                .with(mursst::synthetic::DataVar::Mask, [4, 10])
                .with(mursst::synthetic::DataVar::SeaIceFraction, [4, 10]),
            false => ChunkLayout::uniform([6, 12]),
        };
        synthetic::write_granule(&granules, &spec).unwrap();
    }
    let mut ctx = Context::local(tmp.path().join("store"), &granules);
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    let input = DiscoverInput {
        lag_days: Some(0),
        validate: Some(ValidateMode::Full),
        manifest: true,
        batch_days: Some(3),
        create: Some(CreateSpec {
            start: day(0),
            end: day(6),
            variables: Vec::new(),
            chunks: Some(GridChunks::All(vec![6, 12])),
            spec_version: None,
        }),
        ..Default::default()
    };
    let done = backfill(&ctx, input).await;
    assert_eq!(done.manifest.batch_days, 3);
    assert_eq!(done.manifest.batches, [0, 1, 2]);
    let native: Vec<_> = done
        .batches
        .iter()
        .flat_map(|b| b.write.native.clone())
        .collect();
    assert_eq!(native.len(), 4, "the four older days: {native:?}");
    for (_, vars) in &native {
        let names: Vec<&String> = vars.keys().collect();
        assert_eq!(names, ["mask", "sea_ice_fraction"], "{vars:?}");
    }
    let repo = StoreRepo::open(
        &RepoLocation::Local(tmp.path().join("store")),
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    let contents = common::store::main_contents(&repo).await;
    assert_eq!(contents.state.days, 7);
    assert_eq!(contents.branches, ["main"]);
    contents
        .assert_native_where(|name, c| c[0] < 4 && ["mask", "sea_ice_fraction"].contains(&name));
}
