//! The embedded default as README's first command runs it: `mursst demo` builds a store
//! from sample granules with no AWS, and the Python one-liner it prints opens it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{TempDir, python};

#[test]
fn demo_builds_a_store_that_its_python_snippet_opens() {
    let tmp = TempDir::new("demo");
    let dir = tmp.path().join("demo");
    let run = || {
        common::output(
            Command::new(env!("CARGO_BIN_EXE_mursst"))
                .args(["demo", "--grid", "200", "400", "--dir"])
                .arg(&dir)
                .stdin(Stdio::null()),
        )
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("added 5 day(s) 2025-01-01..2025-01-05"),
        "{stdout}"
    );
    assert!(
        stdout.contains("added 3 day(s) 2025-01-06..2025-01-08"),
        "{stdout}"
    );
    assert!(
        stdout.contains("store: 8 day(s), 2025-01-01..2025-01-08"),
        "{stdout}"
    );

    // The printed command must work as printed: its interpreter has icechunk.
    let (interpreter, snippet) = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" -c \""))
        .and_then(|(py, rest)| Some((py, rest.strip_suffix('"')?)))
        .unwrap_or_else(|| panic!("no Python command in:\n{stdout}"));
    assert_eq!(Path::new(interpreter), python(), "{stdout}");
    let py = common::output(Command::new(interpreter).arg("-c").arg(snippet));
    let printed = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&py.stderr)
    );
    for expected in [
        "time: 8",
        "lat: 200",
        "lon: 400",
        "analysed_sst",
        "sea_ice_fraction",
    ] {
        assert!(printed.contains(expected), "{expected} not in:\n{printed}");
    }

    // Run again: a fresh store from the granules already there.
    let again = run();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("store: 8 day(s)"));
}
