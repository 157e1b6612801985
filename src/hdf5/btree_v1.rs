//! Version-1 B-trees: type 0 indexes symbol table nodes of old-style groups, type 1
//! indexes the chunks of layout-v3 datasets. Sibling subtrees are read concurrently.

use futures::future::{BoxFuture, try_join_all};

use super::cursor::Cursor;
use super::file::FileCtx;
use super::place::{At, Place, Visited, corrupt};
use super::{Hdf5Error, Hdf5ErrorKind};

/// A leaf entry of a chunk B-tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkRecord {
    /// Element offsets of the chunk's first element, one per dataset dimension.
    pub offsets: Vec<u64>,
    pub size: u32,
    pub filter_mask: u32,
    pub address: u64,
}

/// Which tree is walked and how its keys look.
#[derive(Clone, Copy)]
enum Kind {
    Group,
    /// Chunk keys carry `rank + 1` offsets (the last is the element-size dimension).
    Chunk {
        rank: usize,
    },
}

impl Kind {
    fn node_type(self) -> u8 {
        match self {
            Kind::Group => 0,
            Kind::Chunk { .. } => 1,
        }
    }

    fn key_size(self, size_len: usize) -> usize {
        match self {
            Kind::Group => size_len,
            Kind::Chunk { rank } => 8 + 8 * (rank + 1),
        }
    }
}

struct Walk<'a, 'r> {
    f: &'a FileCtx<'r>,
    kind: Kind,
    k: u16,
    place: &'a Place,
    seen: Visited,
}

/// One parsed node: its level, keys (raw) and child addresses.
struct Node {
    level: u8,
    keys: Vec<bytes::Bytes>,
    children: Vec<u64>,
}

/// Every chunk of a layout-v3 chunked dataset of the given rank.
pub(crate) async fn chunk_records(
    f: &FileCtx<'_>,
    root: u64,
    rank: usize,
    place: &Place,
) -> Result<Vec<ChunkRecord>, Hdf5Error> {
    let walk = Walk {
        f,
        kind: Kind::Chunk { rank },
        k: f.superblock.btree_k.chunk,
        place,
        seen: Visited::default(),
    };
    let leaves = walk.visit(root, None).await?;
    let mut out = Vec::with_capacity(leaves.len());
    for (key, address) in leaves {
        let mut c = Cursor::new(&key);
        let rec = (|| {
            let size = c.u32()?;
            let filter_mask = c.u32()?;
            let offsets = (0..rank).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
            Ok::<_, Hdf5ErrorKind>(ChunkRecord {
                offsets,
                size,
                filter_mask,
                address,
            })
        })()
        .at(place, || {
            format!("v1 B-tree chunk key for chunk at {address:#x}")
        })?;
        out.push(rec);
    }
    Ok(out)
}

/// Addresses of the symbol table nodes of an old-style group, in name order.
pub(crate) async fn group_nodes(
    f: &FileCtx<'_>,
    root: u64,
    place: &Place,
) -> Result<Vec<u64>, Hdf5Error> {
    let walk = Walk {
        f,
        kind: Kind::Group,
        k: f.superblock.btree_k.group_internal,
        place,
        seen: Visited::default(),
    };
    Ok(walk
        .visit(root, None)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

impl<'a, 'r> Walk<'a, 'r> {
    /// Leaf entries (left key, child address) under the node at `addr`, in key order.
    fn visit(
        &'a self,
        addr: u64,
        expect_level: Option<u8>,
    ) -> BoxFuture<'a, Result<Vec<(bytes::Bytes, u64)>, Hdf5Error>> {
        Box::pin(async move {
            let field = || format!("v1 B-tree node at {addr:#x}");
            self.seen.enter(addr, self.place, field())?;
            let node = self.read_node(addr).await.at(self.place, field)?;
            if let Some(level) = expect_level
                && node.level != level
            {
                return Err(self.place.err(
                    field(),
                    corrupt(format!(
                        "node level {} under a node of level {}",
                        node.level,
                        level + 1
                    )),
                ));
            }
            if node.level == 0 {
                return Ok(node.keys.into_iter().zip(node.children).collect());
            }
            let below = node.level - 1;
            let subtrees =
                try_join_all(node.children.iter().map(|&c| self.visit(c, Some(below)))).await?;
            Ok(subtrees.into_iter().flatten().collect())
        })
    }

    async fn read_node(&self, addr: u64) -> Result<Node, Hdf5ErrorKind> {
        let fmt = self.f.fmt;
        let (a, key) = (fmt.addr_len(), self.kind.key_size(fmt.size_len()));
        let entries = 2 * usize::from(self.k);
        let full = 8 + 2 * a + (entries + 1) * key + entries * a;
        // The last node may sit at the end of the file with its unused tail cut off.
        let len = (full as u64).min(self.f.io.size().saturating_sub(addr));
        let block = self.f.io.read(addr, len).await?;
        let mut c = Cursor::new(&block);
        c.signature(b"TREE")?;
        let node_type = c.u8()?;
        if node_type != self.kind.node_type() {
            return Err(corrupt(format!(
                "node type {node_type}, expected {}",
                self.kind.node_type()
            )));
        }
        let level = c.u8()?;
        let used = usize::from(c.u16()?);
        if used > entries {
            return Err(corrupt(format!(
                "{used} entries in a node of at most {entries}"
            )));
        }
        c.skip(2 * a)?; // siblings
        let mut keys = Vec::with_capacity(used);
        let mut children = Vec::with_capacity(used);
        for _ in 0..used {
            let start = c.pos();
            c.skip(key)?;
            keys.push(block.slice(start..start + key));
            children.push(
                fmt.addr(&mut c)?
                    .ok_or_else(|| corrupt("undefined child address"))?,
            );
        }
        Ok(Node {
            level,
            keys,
            children,
        })
    }
}
