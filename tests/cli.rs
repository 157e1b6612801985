//! What a newcomer meets at the command line: errors that say where and why.

mod common;

use std::process::Command;

#[test]
fn an_unreachable_s3_endpoint_is_named_with_the_cause() {
    let tmp = common::TempDir::new("cli-endpoint");
    // Nothing listens on port 1.
    let out = common::output(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .args(["update", "--store", "s3://stores/mur", "--source"])
            .arg(tmp.path())
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-west-2"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("s3://stores/mur"), "names the store: {err}");
    assert!(
        err.contains("http://127.0.0.1:1"),
        "names the endpoint: {err}"
    );
    assert!(err.contains("Connection refused"), "keeps the cause: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
