//! Step Functions caps a state's payload at 256 KB: the JSON the steps hand each other
//! stays far below it even for a 60-day catch-up, because references travel as artifacts.

mod common;

use chrono::NaiveDate;
use mursst::pipeline::{
    self, Context, DiscoverInput, GenerateRefsInput, MergeInput, ValidateInput, WriteInput,
};
use mursst::synthetic::{self, GranuleSpec};
use mursst::validate::ValidateMode;
use serde_json::{Value, json};

const CATCH_UP_DAYS: u64 = 60;
/// Well under Step Functions' 256 KB, leaving room for longer S3 URLs than local paths.
const BUDGET: usize = 64 * 1024;

fn day(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_day_catch_up_keeps_every_state_payload_small() {
    let tmp = common::TempDir::new("payloads");
    let granules = tmp.path().join("granules");
    for i in 0..=CATCH_UP_DAYS {
        synthetic::write_granule(&granules, &GranuleSpec::small(day(i), 20, 40)).unwrap();
    }
    let mut ctx = Context::local(tmp.path().join("store"), &granules);
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    let options = pipeline::UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Metadata,
        ..Default::default()
    };
    let vars: Vec<String> = pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    pipeline::init(&ctx, &options, day(0), day(0), &vars)
        .await
        .unwrap();

    // The update state machine's state after each step, as Step Functions builds it.
    let input = DiscoverInput {
        lag_days: Some(0),
        validate: Some(ValidateMode::Metadata),
        ..Default::default()
    };
    let found = pipeline::discover(&ctx, input).await.unwrap();
    assert_eq!(found.granules.len() as u64, CATCH_UP_DAYS);
    let mut state = serde_json::to_value(&found).unwrap();
    let mut largest = size(&state);
    let mut refs = Vec::new();
    for granule in &found.granules {
        let item = GenerateRefsInput {
            run: found.run.clone(),
            granule: granule.clone(),
        };
        largest = largest.max(size(&serde_json::to_value(&item).unwrap()));
        let out = pipeline::generate_refs(&ctx, item).await.unwrap();
        largest = largest.max(size(&serde_json::to_value(&out).unwrap()));
        refs.push(out);
    }
    state["refs"] = json!(refs);
    largest = largest.max(size(&state));
    let write = pipeline::write_branch(
        &ctx,
        WriteInput {
            run: found.run.clone(),
            refs: refs.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(write.days.len() as u64, CATCH_UP_DAYS);
    state["write"] = json!(write);
    largest = largest.max(size(&state));
    let validation = pipeline::validate_branch(
        &ctx,
        ValidateInput {
            run: found.run.clone(),
            refs,
            write: write.clone(),
        },
    )
    .await
    .unwrap();
    state["validation"] = json!(validation);
    let merge = pipeline::merge(
        &ctx,
        MergeInput {
            run: found.run.clone(),
            write,
        },
    )
    .await
    .unwrap();
    assert!(merge.main_moved);
    state["merge"] = json!(merge);
    largest = largest.max(size(&state));
    assert!(
        largest < BUDGET,
        "the largest state payload of a {CATCH_UP_DAYS}-day catch-up is {largest} bytes"
    );
    println!("largest state payload: {largest} bytes for {CATCH_UP_DAYS} days");
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}
