//! The CMR page and `s3credentials` parsers on hostile bytes, briefly and on stable Rust
//! (the fuzz targets in `fuzz/` run the same calls for longer): the seeds cut at every
//! byte and thousands of seeded random mutations of them give a value or an error, never
//! a panic, and an error never quotes a secret from the body.

use std::path::Path;

use rand::{Rng, SeedableRng};

const MUTATIONS: usize = 5000;

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(dir);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Flip, overwrite, insert, delete or duplicate a few bytes.
fn mutate(rng: &mut impl Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=data.len());
        match rng.random_range(0..5) {
            0 if at < data.len() => data[at] ^= 1 << rng.random_range(0..8),
            1 if at < data.len() => data[at] = b"{}[]\",:0-9eE.\\nulltrue"[rng.random_range(0..22)],
            2 => data.insert(at, rng.random()),
            3 if at < data.len() => {
                data.remove(at);
            }
            _ => {
                let end = (at + rng.random_range(0..16)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
        }
    }
    data
}

/// Every cut of every seed, then random mutations, through `parse`.
fn hammer(dir: &str, mut parse: impl FnMut(&[u8])) -> usize {
    let seeds = seeds(dir);
    let mut runs = 0;
    for seed in &seeds {
        for cut in 0..seed.len() {
            parse(&seed[..cut]);
            runs += 1;
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d75_7273);
    for i in 0..MUTATIONS {
        parse(&mutate(&mut rng, &seeds[i % seeds.len()]));
        runs += 1;
    }
    runs
}

#[test]
fn cmr_pages() {
    let url = "https://cmr.test/search/granules.umm_json";
    let mut errors = 0;
    let runs = hammer("parse_cmr_page", |data| {
        if let Err(e) = mursst::cmr::parse_page(url, data) {
            errors += 1;
            assert!(!e.to_string().is_empty());
        }
    });
    assert!(
        errors > 0 && errors < runs,
        "{errors} errors in {runs} runs"
    );
}

#[test]
fn credentials_answers() {
    let url = "https://edl.test/s3credentials";
    let mut errors = 0;
    let runs = hammer(
        "parse_credentials",
        |data| match mursst::credentials::parse_credentials(url, data) {
            Ok(creds) => {
                let shown = format!("{creds:?}");
                assert!(
                    !shown.contains("c2VjcmV0") && !shown.contains("dG9rZW4="),
                    "{shown}"
                );
            }
            Err(e) => {
                errors += 1;
                let shown = format!("{e} {e:?}");
                assert!(
                    !shown.contains("c2VjcmV0") && !shown.contains("dG9rZW4="),
                    "{shown}"
                );
            }
        },
    );
    assert!(
        errors > 0 && errors < runs,
        "{errors} errors in {runs} runs"
    );
}
