//! `mursst ops` against moto's Step Functions: what moto supports (create, start,
//! list, describe, a mocked history) is exercised through the real CLI; resuming a run
//! from a real-shaped history is checked on the input it builds.

mod common;

use std::process::Command;

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType, StateExitedEventDetails};
use common::MotoServer;
use serde_json::{Value, json};

fn ops(moto: &MotoServer, args: &[&str]) -> std::process::Output {
    common::output(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .arg("ops")
            .args(args)
            .envs(moto.env()),
    )
}

/// A state machine on moto with the real update definition.
async fn state_machine(moto: &MotoServer) -> String {
    let settings = moto.s3_settings();
    let client = aws_sdk_sfn::Client::new(&settings.sdk_config().await);
    let definition =
        std::fs::read_to_string(common::repo_root().join("statemachine/update.asl.json"))
            .unwrap()
            .replace("${", "arn:aws:lambda:us-west-2:123456789012:function:")
            .replace("FunctionArn}", "")
            .replace("NotifyTopicArn}", "topic");
    client
        .create_state_machine()
        .name("mursst-update")
        .role_arn("arn:aws:iam::123456789012:role/mursst")
        .definition(definition)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create state machine: {e:?}\n{}", moto.log()))
        .state_machine_arn()
        .to_string()
}

#[tokio::test]
async fn start_lists_and_refuses_to_redrive_a_run_that_did_not_fail() {
    let moto = MotoServer::start();
    let arn = state_machine(&moto).await;
    let out = ops(
        &moto,
        &[
            "start",
            "--state-machine",
            &arn,
            "--dates",
            "2025-01-02,2025-01-03",
            "--dry-run",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let execution = started["execution"].as_str().unwrap().to_string();
    assert!(execution.contains(":execution:mursst-update:"), "{started}");

    let out = ops(&moto, &["status", "--state-machine", &arn]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["executions"][0]["arn"], json!(execution), "{status}");
    assert_eq!(status["executions"][0]["status"], "RUNNING", "{status}");

    // The input went through as the state machine reads it.
    let settings = moto.s3_settings();
    let client = aws_sdk_sfn::Client::new(&settings.sdk_config().await);
    let described = client
        .describe_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"dry_run": true, "dates": ["2025-01-02", "2025-01-03"]})
    );

    let out = ops(&moto, &["redrive", &execution]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("RUNNING, not failed"), "{err}");
}

#[tokio::test]
async fn a_failed_execution_without_a_run_is_not_resumed_blindly() {
    // moto's failed executions carry a fixed history without our Discover state.
    let moto = MotoServer::start_with_env(&[("SF_EXECUTION_HISTORY_TYPE", "FAILURE")]);
    let arn = state_machine(&moto).await;
    let out = ops(&moto, &["start", "--state-machine", &arn]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let execution = started["execution"].as_str().unwrap();
    let out = ops(&moto, &["redrive", execution]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no Discover output") && err.contains(execution),
        "{err}"
    );
}

#[test]
fn a_resumed_run_keeps_its_id_today_and_days() {
    let discover = json!({
        "run": {
            "id": "20261201T100000.000000Z", "branch": "add_time_20261201T100000.000000Z",
            "today": "2026-12-01", "base_snapshot": "XYZ", "store": "s3://s/p",
            "source": "s3://g/", "artifacts": "s3://a/",
            "options": {"dry_run": false, "validate": "sample", "lag_days": 10,
                        "limit": null, "seed": 0, "map_concurrency": 8}
        },
        "has_work": true,
        "granules": [{"date": "2026-11-20", "url": "s3://g/a.nc"},
                     {"date": "2026-11-21", "url": "s3://g/b.nc"}],
        "store_days": 3, "store_first_day": null, "store_last_day": null,
        "gap_at": null, "settling": 0, "limited": false, "message": "2 day(s) to add"
    });
    let event = |kind: HistoryEventType, name: &str, output: &str| {
        HistoryEvent::builder()
            .id(1)
            .timestamp(aws_sdk_sfn::primitives::DateTime::from_secs(0))
            .r#type(kind)
            .state_exited_event_details(
                StateExitedEventDetails::builder()
                    .name(name)
                    .output(output)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let history = vec![
        event(HistoryEventType::PassStateExited, "Discover", "{}"),
        event(
            HistoryEventType::TaskStateExited,
            "Discover",
            &discover.to_string(),
        ),
        event(HistoryEventType::TaskStateExited, "WriteBranch", "{}"),
    ];
    let input = mursst::ops::resume_input("e", r#"{"map_concurrency": 4}"#, &history).unwrap();
    assert_eq!(
        input,
        json!({"map_concurrency": 4, "run_id": "20261201T100000.000000Z",
               "today": "2026-12-01", "dates": ["2026-11-20", "2026-11-21"]})
    );
    let err = mursst::ops::resume_input("e", "{}", &history[2..]).unwrap_err();
    assert!(err.to_string().contains("no Discover output"), "{err}");
}
