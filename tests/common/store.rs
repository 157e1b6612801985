//! Facts about a store that two builds of the same days must share.

use icechunk::format::manifest::ChunkPayload;
use icechunk::format::{ChunkIndices, Path as NodePath, SnapshotId};
use mursst::store::{StoreRepo, StoreState};

/// Every data array's chunk reference, as (array, chunk index, url, offset, length), in
/// order; a native or missing chunk is reported as such.
pub async fn all_refs(
    repo: &StoreRepo,
    snapshot: &SnapshotId,
    state: &StoreState,
) -> Vec<(String, Vec<u32>, String)> {
    let session = repo.readonly_at(snapshot).await.unwrap();
    let mut out = Vec::new();
    for name in state.data_arrays() {
        let meta = &state.schema.arrays[&name];
        let grid: Vec<u64> = meta
            .shape
            .iter()
            .zip(meta.chunk_shape())
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let path = NodePath::new(&format!("/{name}")).unwrap();
        let mut index = vec![0u64; grid.len()];
        'all: loop {
            let coords: Vec<u32> = index.iter().map(|i| *i as u32).collect();
            let got = session
                .get_chunk_ref(&path, &ChunkIndices(coords.clone()))
                .await
                .unwrap();
            let what = match got {
                Some(ChunkPayload::Virtual(r)) => {
                    format!("{} {}+{}", r.location.url(), r.offset, r.length)
                }
                Some(other) => format!("not virtual: {other:?}"),
                None => "missing".to_string(),
            };
            out.push((name.clone(), coords, what));
            for d in (0..grid.len()).rev() {
                index[d] += 1;
                if index[d] < grid[d] {
                    continue 'all;
                }
                index[d] = 0;
            }
            break;
        }
    }
    out
}

/// What main holds, its branches (sorted) and every reference: what a clean run and a
/// disturbed run of the same days must share.
pub struct MainContents {
    pub state: StoreState,
    pub branches: Vec<String>,
    pub refs: Vec<(String, Vec<u32>, String)>,
}

impl MainContents {
    /// Every chunk is native exactly where `native(array, chunk index)` says, virtual
    /// elsewhere.
    pub fn assert_native_where(&self, native: impl Fn(&str, &[u32]) -> bool) {
        for (name, coords, what) in &self.refs {
            assert_eq!(
                what.starts_with("not virtual"),
                native(name, coords),
                "{name} {coords:?}: {what}"
            );
        }
    }
}

pub async fn main_contents(repo: &StoreRepo) -> MainContents {
    let tip = repo.branch_tip("main").await.unwrap();
    let state = repo.state_at(&tip).await.unwrap().expect("main holds days");
    let refs = all_refs(repo, &tip, &state).await;
    let mut branches = repo.list_branches().await.unwrap();
    branches.sort();
    MainContents {
        state,
        branches,
        refs,
    }
}
