//! Crash anywhere: `mursst update` aborted at each of the pipeline's crash points
//! (`MURSST_CRASH_AT`, see `pipeline::CRASH_POINTS`: every step boundary and the points
//! inside refs generation, the branch commit and the merge), on a local store and on S3
//! (moto). After each crash main holds either the old days or all of the new ones,
//! never part; a rerun finishes; the store's references equal a clean run's; what the
//! crash left behind is reported and pruned.

mod common;

use std::path::Path;
use std::process::Command;

use chrono::NaiveDate;
use common::store::{MainContents, main_contents};
use common::{MotoServer, TempDir};
use mursst::aws::AwsSettings;
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, CRASH_POINTS, Context, UpdateOptions};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::synthetic::{self, ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
}

/// Where one store lives, and how to reach it.
struct Place {
    store: String,
    source: String,
    artifacts: String,
    s3: AwsSettings,
    env: Vec<(String, String)>,
}

impl Place {
    fn context(&self) -> Context {
        Context {
            store: RepoLocation::parse(&self.store).unwrap(),
            store_s3: self.s3.clone(),
            source: GranuleSource::parse(&self.source, &self.s3.clone().into()).unwrap(),
            source_s3: self.s3.clone().into(),
            artifacts: self.artifacts.clone(),
            artifacts_s3: self.s3.clone().into(),
            read_options: Default::default(),
            concurrency: 2,
            progress: None,
            defaults: Default::default(),
        }
    }

    /// A store holding days 1 and 2.
    async fn init(&self) {
        let options = UpdateOptions {
            lag_days: 0,
            validate: ValidateMode::Off,
            ..Default::default()
        };
        let vars: Vec<String> = vec!["analysed_sst".into(), "mask".into()];
        pipeline::init(&self.context(), &options, day(1), day(2), &vars)
            .await
            .expect("init");
    }

    fn mursst(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mursst"));
        cmd.args(args)
            .args(["--store", &self.store])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("MURSST_CRASH_AT");
        cmd
    }

    /// `mursst update` adding days 3 to 5.
    fn update(&self) -> Command {
        let mut cmd = self.mursst(&["update", "--json", "--lag-days", "0", "--validate", "full"]);
        cmd.args(["--source", &self.source, "--artifacts", &self.artifacts]);
        cmd
    }

    async fn main(&self) -> MainContents {
        let ctx = self.context();
        let repo = StoreRepo::open(&ctx.store, &self.s3, &ctx.source_s3)
            .await
            .unwrap();
        main_contents(&repo).await
    }
}

fn granules(dir: &Path) {
    for d in 1..=5 {
        let mut spec = GranuleSpec::small(day(d), 40, 90);
        spec.chunks = ChunkLayout::uniform([16, 32]);
        synthetic::write_granule(dir, &spec).unwrap();
    }
}

/// A clean run, then a crash at every point followed by a rerun, on one kind of store.
async fn crash_everywhere(place: impl Fn(&str) -> Place) {
    let clean = place("clean");
    clean.init().await;
    let out = common::output(&mut clean.update());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = clean.main().await;
    assert_eq!(want.state.days, 5);
    for point in CRASH_POINTS {
        let p = place(point);
        p.init().await;
        let before = p.main().await;
        let out = common::output(p.update().env("MURSST_CRASH_AT", point));
        assert!(!out.status.success(), "{point}: the run did not crash");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("MURSST_CRASH_AT={point}")),
            "{point}: {stderr}"
        );
        // main holds the old days, or (crashed after the merge) all of the new ones.
        let crashed = p.main().await;
        if crashed.state.days == before.state.days {
            assert_eq!(crashed.refs, before.refs, "{point}: main changed");
        } else {
            assert_eq!(crashed.refs, want.refs, "{point}: main holds part of a run");
        }
        let out = common::output(&mut p.update());
        assert!(
            out.status.success(),
            "{point}: the rerun failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = p.main().await;
        assert_eq!(after.state.days, 5, "{point}");
        assert_eq!(after.refs, want.refs, "{point}: not what a clean run makes");
        // A crash before the merge leaves its branch: listed, then pruned.
        let listed = common::output(&mut p.mursst(&["store", "branches"]));
        assert!(listed.status.success(), "{point}");
        let pruned = common::output(&mut p.mursst(&["store", "prune", "--older-than", "0s"]));
        assert!(
            pruned.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&pruned.stderr)
        );
        assert_eq!(p.main().await.branches, ["main"], "{point}: left behind");
    }
}

#[tokio::test]
async fn crashes_on_a_local_store() {
    let tmp = TempDir::new("crash-local");
    let source = tmp.path().join("granules");
    granules(&source);
    crash_everywhere(|name| Place {
        store: tmp.path().join(name).join("store").display().to_string(),
        source: source.display().to_string(),
        artifacts: tmp
            .path()
            .join(name)
            .join("artifacts")
            .display()
            .to_string(),
        s3: AwsSettings::default(),
        env: Vec::new(),
    })
    .await;
}

#[tokio::test]
async fn crashes_on_s3() {
    let moto = MotoServer::start();
    let tmp = TempDir::new("crash-s3");
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    granules(&tmp.path().join("granules"));
    for entry in std::fs::read_dir(tmp.path().join("granules")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        moto.put_file("granules", &format!("mur/{name}"), &path)
            .await;
    }
    crash_everywhere(|name| Place {
        store: format!("s3://stores/{name}"),
        source: "s3://granules/mur/".into(),
        artifacts: format!("s3://stores/artifacts/{name}"),
        s3: moto.s3_settings(),
        env: moto
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    })
    .await;
}
