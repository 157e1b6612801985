//! The backfill's steps as its state machine chains them, over more days than one
//! commit holds: every batch bounded, the result the same store a daily build makes.

mod common;

use chrono::NaiveDate;
use mursst::granule::Granule;
use mursst::pipeline::{
    self, Context, CreateSpec, DiscoverInput, GenerateRefsBatch, PromoteInput, ValidateBatchInput,
    WriteBatchInput,
};
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
    let found = pipeline::discover(
        &ctx,
        DiscoverInput {
            lag_days: Some(0),
            validate: Some(ValidateMode::Sample),
            manifest: true,
            create: Some(CreateSpec {
                start: day(0),
                end: day(DAYS - 1),
                variables: variables.clone(),
                chunks: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        found.granules.is_empty(),
        "the granules travel in the manifest"
    );
    let manifest = found.manifest.clone().unwrap();
    assert_eq!(manifest.days, DAYS);
    assert_eq!(manifest.batches, [0, 1, 2]);
    let run = found.run.clone();

    // The Distributed Map: the manifest's items in batches of 16.
    let items: Vec<Granule> =
        serde_json::from_slice(&std::fs::read(&manifest.key).unwrap()).unwrap();
    assert_eq!(items.len() as u64, DAYS);
    for batch in items.chunks(16) {
        let out = pipeline::generate_refs_batch(
            &ctx,
            GenerateRefsBatch {
                run: run.clone(),
                items: batch.to_vec(),
            },
        )
        .await
        .unwrap();
        assert_eq!(out.granules, batch.len() as u64);
    }

    // The commit loop, each batch one commit; a repeated batch changes nothing.
    let mut next = 0;
    let last = loop {
        let out = pipeline::write_batch(
            &ctx,
            WriteBatchInput {
                run: run.clone(),
                batch: next,
            },
        )
        .await
        .unwrap();
        assert!(!out.write.reused, "batch {next}");
        assert_eq!(
            out.write.days_after,
            ((next + 1) * pipeline::BATCH_DAYS).min(DAYS),
            "batch {next}"
        );
        next = out.next_batch;
        if out.done {
            break out;
        }
    };
    let again = pipeline::write_batch(
        &ctx,
        WriteBatchInput {
            run: run.clone(),
            batch: 1,
        },
    )
    .await
    .unwrap();
    assert!(again.write.reused);
    assert_eq!(
        again.write.snapshot, last.write.snapshot,
        "a repeated batch adds no commit"
    );

    // Every batch validated against the final tip, then main moves once.
    for batch in &manifest.batches {
        let report = pipeline::validate_batch(
            &ctx,
            ValidateBatchInput {
                run: run.clone(),
                batch: *batch,
                snapshot: last.write.snapshot.clone(),
            },
        )
        .await
        .unwrap();
        assert!(report.chunks_compared > 0, "batch {batch}: {report:?}");
    }
    let merged = pipeline::promote(
        &ctx,
        PromoteInput {
            run,
            write: last.write.clone(),
        },
    )
    .await
    .unwrap();
    assert!(merged.main_moved, "{merged:?}");
    assert!(
        merged.message.contains(&format!("added {DAYS} day(s)")),
        "{merged:?}"
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
