//! The NASA side on loopback: CMR search against a stand-in serving recorded UMM-G
//! items, Earthdata login and PO.DAAC temporary credentials against a stand-in of both,
//! moto for Secrets Manager and S3, and `mursst update --source cmr` end to end with
//! credentials that expire mid-run.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::standins::{self, Standin};
use common::{MotoServer, TempDir};
use mursst::aws::AwsSettings;
use mursst::cmr::{CmrClient, CmrConfig, CmrError};
use mursst::credentials::{EdlSettings, LoginSource, PodaacCredentials};
use mursst::objects::Object;
use mursst::objects::S3Access;
use mursst::source::RangeRead;
use serde_json::{Value, json};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

fn name(d: u32) -> String {
    mursst::granule::file_name(day(d))
}

/// A catalog of days `days`, with S3 URLs under `s3://granules/mur/`.
fn catalog(dir: &Path, days: impl IntoIterator<Item = u32>, extra: Value) -> std::path::PathBuf {
    let granules: Vec<Value> = days
        .into_iter()
        .map(|d| json!({"date": day(d).to_string(), "url": format!("s3://granules/mur/{}", name(d))}))
        .collect();
    let mut doc =
        json!({"short_name": "MUR-JPL-L4-GLOB-v4.1", "provider": "POCLOUD", "granules": granules});
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    let path = dir.join("catalog.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn config(cmr: &Standin) -> CmrConfig {
    CmrConfig {
        url: cmr.url(),
        page_size: 3,
        attempts: 3,
        backoff_ms: 10,
        s3_prefix: "s3://granules/mur/".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn cmr_search_pages_resolves_duplicates_and_reports_what_it_cannot_use() {
    let tmp = TempDir::new("cmr");
    let path = catalog(tmp.path(), 1..=10, json!({}));
    let cmr = standins::cmr(&path);
    let client = CmrClient::new(config(&cmr)).unwrap();
    let found = client.granules(day(1), day(10)).await.unwrap();
    let days: Vec<NaiveDate> = found.granules.iter().map(|g| g.day).collect();
    assert_eq!(days, (1..=10).map(day).collect::<Vec<_>>());
    assert_eq!(
        (found.pages, found.hits),
        (4, Some(10)),
        "3 + 3 + 3 + 1 items"
    );
    let after: Vec<Value> = cmr
        .entries()
        .iter()
        .map(|e| e["search_after"].clone())
        .collect();
    assert_eq!(after[0], Value::Null);
    assert!(
        after[1..].iter().all(Value::is_string),
        "search-after sent back: {after:?}"
    );
    assert!(found.granules[0].s3_url.ends_with(&name(1)));

    // A window with nothing in it.
    let none = client.granules(day(20), day(25)).await.unwrap();
    assert!(none.granules.is_empty());

    // A reprocessed day and a day without a direct-access link.
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let granules = doc["granules"].as_array_mut().unwrap();
    granules.push(json!({"date": day(4).to_string(), "url": format!("s3://granules/mur/{}", name(4)),
        "revision_id": 3, "revision_date": "2025-01-09T00:00:00.000Z", "concept_id": "G4-REPROCESSED"}));
    granules[6]["direct_link"] = json!(false);
    std::fs::write(&path, doc.to_string()).unwrap();
    let found = client.granules(day(1), day(10)).await.unwrap();
    let four = found.granules.iter().find(|g| g.day == day(4)).unwrap();
    assert_eq!(four.concept_id, "G4-REPROCESSED");
    assert_eq!(found.duplicates.len(), 1, "{:?}", found.duplicates);
    assert!(found.duplicates[0].kept.contains("G4-REPROCESSED"));
    assert!(found.granules.iter().all(|g| g.day != day(7)));
    assert_eq!(found.unusable.len(), 1);
    assert!(
        found.unusable[0].reason.contains("RelatedUrls"),
        "{:?}",
        found.unusable
    );
}

#[tokio::test]
async fn cmr_search_pages_past_short_pages_until_the_hits_are_exhausted() {
    let tmp = TempDir::new("cmr-short");
    // page_size 3, but the stand-in answers 2 items a page while more remain.
    let path = catalog(
        tmp.path(),
        1..=10,
        json!({"faults": {"short_page_items": 2}}),
    );
    let cmr = standins::cmr(&path);
    let found = CmrClient::new(config(&cmr))
        .unwrap()
        .granules(day(1), day(10))
        .await
        .unwrap();
    let days: Vec<NaiveDate> = found.granules.iter().map(|g| g.day).collect();
    assert_eq!(days, (1..=10).map(day).collect::<Vec<_>>());
    assert_eq!(
        (found.pages, found.hits),
        (5, Some(10)),
        "2 + 2 + 2 + 2 + 2 items, and no request after the hits are read"
    );
    assert_eq!(cmr.entries().len(), 5);
}

#[tokio::test]
async fn cmr_errors_are_shown_retried_or_named() {
    let tmp = TempDir::new("cmr-errors");
    // Two 503s, then the answer: retried, and counted.
    let path = catalog(
        tmp.path(),
        1..=2,
        json!({"faults": {"fail_first": 2, "fail_status": 503}}),
    );
    let cmr = standins::cmr(&path);
    let found = CmrClient::new(config(&cmr))
        .unwrap()
        .granules(day(1), day(2))
        .await
        .unwrap();
    assert_eq!((found.granules.len(), found.retries), (2, 2));

    // Always 503: gives up after the bound, naming the URL and the last answer.
    let path = catalog(
        tmp.path(),
        1..=2,
        json!({"faults": {"fail_first": 1000, "fail_status": 503}}),
    );
    let cmr = standins::cmr(&path);
    let err = CmrClient::new(config(&cmr))
        .unwrap()
        .granules(day(1), day(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CmrError::GaveUp { attempts: 3, .. }), "{err}");
    assert!(
        err.to_string().contains("503") && err.to_string().contains("/search/granules.umm_json"),
        "{err}"
    );
    assert_eq!(cmr.entries().len(), 3);

    // A 400 shows CMR's own message.
    let path = catalog(tmp.path(), 1..=2, json!({}));
    let cmr = standins::cmr(&path);
    let mut bad = config(&cmr);
    bad.collection = "NOT-A-COLLECTION".into();
    let err = CmrClient::new(bad)
        .unwrap()
        .granules(day(1), day(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CmrError::Http { status: 400, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("[short_name] with value [NOT-A-COLLECTION]"),
        "{err}"
    );

    // A truncated page is an error, not a shorter record.
    let path = catalog(tmp.path(), 1..=5, json!({"faults": {"truncate_page": 2}}));
    let cmr = standins::cmr(&path);
    let err = CmrClient::new(config(&cmr))
        .unwrap()
        .granules(day(1), day(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

const USER: &str = "mursst-ci";
const PASSWORD: &str = "pa55-word-never-printed";
const TOKEN: &str = "edl-bearer-token-never-printed";

fn edl_settings(edl: &Standin, login: LoginSource, margin_s: u64) -> EdlSettings {
    EdlSettings {
        endpoint: format!("{}/s3credentials", edl.url()),
        login,
        refresh_margin_s: margin_s,
    }
}

/// A secret on moto holding the Earthdata login, as the deployment stores it.
async fn login_secret(moto: &MotoServer) -> String {
    standins::login_secret(moto, "mursst/edl", USER, PASSWORD).await
}

fn set_aws_env(moto: &MotoServer) {
    // The credentials module reads the secret with the process's AWS settings.
    for (k, v) in moto.env() {
        // SAFETY: set before any other thread of this test binary reads them; the tests
        // of this binary that read the environment all set the same values.
        unsafe { std::env::set_var(k, v) };
    }
}

/// One moto for both: the login secret is read with the process's AWS environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn podaac_credentials_are_cached_shared_refreshed_and_sign_ranged_reads() {
    let moto = MotoServer::start();
    set_aws_env(&moto);
    let arn = login_secret(&moto).await;
    cached_shared_and_refreshed(&arn).await;
    ranged_reads_use_the_refreshed_keys(&moto, &arn).await;
}

async fn cached_shared_and_refreshed(arn: &str) {
    let arn = arn.to_string();
    let edl = standins::edl(USER, PASSWORD, TOKEN, 3.0);
    let creds =
        PodaacCredentials::shared(&edl_settings(&edl, LoginSource::SecretsManager { arn }, 1));
    let first = creds.get().await.unwrap();
    assert_eq!(first.access_key_id, "ASIAEDL0001");
    // Cached: 16 callers at once make no new request.
    let all = futures::future::join_all((0..16).map(|_| {
        let c = Arc::clone(&creds);
        async move { c.get().await.unwrap().access_key_id }
    }))
    .await;
    assert!(all.iter().all(|k| k == "ASIAEDL0001"), "{all:?}");
    assert_eq!(edl.entries().len(), 1);
    // Within the margin of expiry: one refresh, shared by every caller.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let all = futures::future::join_all((0..16).map(|_| {
        let c = Arc::clone(&creds);
        async move { c.get().await.unwrap().access_key_id }
    }))
    .await;
    assert!(all.iter().all(|k| k == "ASIAEDL0002"), "{all:?}");
    assert_eq!(edl.entries().len(), 2, "one refresh for 16 callers");
    assert!(edl.entries().iter().all(|e| e["via"] == "cookie"));
}

#[tokio::test]
async fn a_bearer_token_and_a_wrong_password() {
    let edl = standins::edl(USER, PASSWORD, TOKEN, 3600.0);
    // SAFETY: only this test of the binary reads the EARTHDATA_* variables.
    unsafe { std::env::set_var("EARTHDATA_TOKEN", TOKEN) };
    let creds = PodaacCredentials::shared(&edl_settings(&edl, LoginSource::Env, 60));
    creds.get().await.unwrap();
    assert_eq!(edl.entries()[0]["via"], "bearer");
    unsafe { std::env::remove_var("EARTHDATA_TOKEN") };
    unsafe { std::env::set_var("EARTHDATA_USERNAME", USER) };
    unsafe { std::env::set_var("EARTHDATA_PASSWORD", "wrong") };
    let other = EdlSettings {
        refresh_margin_s: 61,
        ..edl_settings(&edl, LoginSource::Env, 60)
    };
    let err = PodaacCredentials::shared(&other)
        .get()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 401") && err.contains("authentication failed"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "{err}");
}

async fn ranged_reads_use_the_refreshed_keys(moto: &MotoServer, arn: &str) {
    let arn = arn.to_string();
    moto.create_bucket("granules").await;
    let tmp = TempDir::new("edl-s3");
    let path = tmp.path().join("object.bin");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    moto.put_file("granules", "mur/object.bin", &path).await;
    let proxy = standins::s3_proxy(&moto.endpoint(), 0.0, "slowdown", None);
    let edl = standins::edl(USER, PASSWORD, TOKEN, 3.0);
    let settings = AwsSettings {
        endpoint: Some(proxy.url()),
        region: Some("us-west-2".into()),
        force_path_style: true,
        ..Default::default()
    };
    let login = edl_settings(&edl, LoginSource::SecretsManager { arn }, 1);
    let s3 = S3Access::new(settings).with_earthdata(Some(login));
    let object = Object::s3(s3.client().await, "granules", "mur/object.bin");
    object.read_range(0..10).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    object.read_range(10..20).await.unwrap();
    let keys: Vec<String> = proxy
        .entries()
        .iter()
        .filter_map(|e| e["access_key_id"].as_str().map(String::from))
        .collect();
    assert_eq!(
        keys.first().map(String::as_str),
        Some("ASIAEDL0001"),
        "{keys:?}"
    );
    assert_eq!(
        keys.last().map(String::as_str),
        Some("ASIAEDL0002"),
        "{keys:?}"
    );
}

/// `mursst update --source cmr` with the store and granules on moto (granules behind the
/// recording proxy), CMR and EDL stand-ins, credentials expiring within the run, and
/// every byte the run prints searched for the secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_from_cmr_end_to_end_with_a_credential_refresh() {
    let moto = MotoServer::start();
    let arn = login_secret(&moto).await;
    moto.create_bucket("granules").await;
    moto.create_bucket("stores").await;
    let tmp = TempDir::new("nasa-e2e");
    for d in 1..=4 {
        let spec = mursst::synthetic::GranuleSpec::small(day(d), 30, 60);
        let path = mursst::synthetic::write_granule(tmp.path(), &spec).unwrap();
        moto.put_file("granules", &format!("mur/{}", name(d)), &path)
            .await;
    }
    let cmr = standins::cmr(&catalog(tmp.path(), 1..=4, json!({})));
    let edl = standins::edl(USER, PASSWORD, TOKEN, 4.0);
    let proxy = standins::s3_proxy(&moto.endpoint(), 0.0, "slowdown", None);
    let run = |args: &[&str]| {
        let out = common::output(
            Command::new(env!("CARGO_BIN_EXE_mursst"))
                .args(args)
                .args([
                    "--store",
                    "s3://stores/mur",
                    "--source",
                    "cmr",
                    "--lag-days",
                    "0",
                    "--validate",
                    "full",
                ])
                .args(["--artifacts", "s3://stores/artifacts"])
                .envs(moto.env())
                .env("MURSST_SOURCE_ENDPOINT_URL", proxy.url())
                .env("MURSST_CMR_URL", cmr.url())
                .env("MURSST_CMR_S3_PREFIX", "s3://granules/mur/")
                .env(
                    "MURSST_S3_CREDENTIALS_URL",
                    format!("{}/s3credentials", edl.url()),
                )
                .env("MURSST_EDL_SECRET_ARN", &arn)
                .env("MURSST_CREDENTIALS_REFRESH_MARGIN_S", "2")
                .env("RUST_LOG", "trace"),
        );
        let printed = [out.stdout.clone(), out.stderr.clone()].concat();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        (out, printed)
    };
    let (_, mut printed) = run(&["init", "--start", "2025-01-01", "--end", "2025-01-02"]);
    std::thread::sleep(Duration::from_secs(3));
    let (out, more) = run(&["update", "--json"]);
    printed.extend(more);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["days_added"],
        json!(["2025-01-03", "2025-01-04"]),
        "{report}"
    );
    assert_eq!(
        report["validation"]["rules"]
            .as_array()
            .unwrap()
            .last()
            .unwrap(),
        "data equal to source"
    );

    // Granule reads were signed with PO.DAAC keys, and more than one issue of them.
    let keys: BTreeSet<String> = proxy
        .entries()
        .iter()
        .filter_map(|e| e["access_key_id"].as_str().map(String::from))
        .collect();
    assert!(keys.iter().all(|k| k.starts_with("ASIAEDL")), "{keys:?}");
    assert!(
        keys.len() >= 2,
        "a refresh happened during the runs: {keys:?}"
    );

    // No secret anywhere in what the runs printed at trace level.
    let printed = String::from_utf8_lossy(&printed);
    let mut secrets = vec![PASSWORD.to_string(), TOKEN.to_string()];
    for e in edl.entries() {
        secrets.push(e["secret"].as_str().unwrap().to_string());
        secrets.push(e["session"].as_str().unwrap().to_string());
    }
    assert!(secrets.len() >= 4);
    for s in &secrets {
        assert!(!printed.contains(s.as_str()), "a secret was printed: {s}");
    }
    assert!(
        printed.contains("ASIAEDL"),
        "the trace shows key ids, which are not secret"
    );
}
