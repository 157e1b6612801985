//! Version-2 B-trees: dense link and attribute name/creation-order indexes (types
//! 5, 6, 8, 9), chunk indexes (types 10, 11) and fractal heap huge objects (type 1).
//! Records are returned raw, in tree order; callers decode them by type.

use bytes::Bytes;
use futures::future::{BoxFuture, try_join_all};

use super::checksum;
use super::cursor::Cursor;
use super::file::FileCtx;
use super::place::{At, Place, Visited, corrupt, limit};
use super::{Hdf5Error, Hdf5ErrorKind};

const PREFIX: usize = 10; // signature, version, type, checksum
const MAX_DEPTH: usize = 32;

/// Header fields and per-level sizes needed to read nodes.
#[derive(Debug)]
struct Header {
    tree_type: u8,
    node_size: usize,
    record_size: usize,
    /// Width of the "records in child" field.
    nrec_width: usize,
    /// Per level: most records a node holds, and width of its "total records below" field.
    max_nrec: Vec<usize>,
    cum_width: Vec<usize>,
    root: Option<u64>,
    root_nrec: usize,
    depth: usize,
}

/// Bytes needed to encode values up to `n` (HDF5's `H5VM_limit_enc_size`).
fn limit_enc_size(n: u64) -> usize {
    (n.max(1).ilog2() / 8 + 1) as usize
}

/// Every record of the v2 B-tree at `addr`, which must be of `tree_type`; returns
/// the record size alongside.
pub(crate) async fn records(
    f: &FileCtx<'_>,
    addr: u64,
    tree_type: u8,
    place: &Place,
) -> Result<(usize, Vec<Bytes>), Hdf5Error> {
    let field = || format!("v2 B-tree header at {addr:#x}");
    let fmt = f.fmt;
    let len = 4 + 1 + 1 + 4 + 2 + 2 + 1 + 1 + fmt.addr_len() + 2 + fmt.size_len() + 4;
    let block = f.io.read(addr, len as u64).await.at(place, field)?;
    let header = parse_header(f, &block).at(place, field)?;
    if header.tree_type != tree_type {
        return Err(place.err(
            field(),
            corrupt(format!(
                "tree type {}, expected {tree_type}",
                header.tree_type
            )),
        ));
    }
    let Some(root) = header.root else {
        return Ok((header.record_size, Vec::new()));
    };
    let walk = Walk {
        f,
        h: &header,
        place,
        seen: Visited::default(),
    };
    let recs = walk.visit(root, header.root_nrec, header.depth).await?;
    Ok((header.record_size, recs))
}

fn parse_header(f: &FileCtx<'_>, block: &[u8]) -> Result<Header, Hdf5ErrorKind> {
    checksum::verify(block)?;
    let mut c = Cursor::new(block);
    c.signature(b"BTHD")?;
    let version = c.u8()?;
    if version != 0 {
        return Err(Hdf5ErrorKind::UnsupportedVersion {
            what: "v2 B-tree header",
            version,
        });
    }
    let tree_type = c.u8()?;
    let node_size = c.u32()? as usize;
    let record_size = usize::from(c.u16()?);
    let depth = usize::from(c.u16()?);
    c.skip(2)?;
    let root = f.fmt.addr(&mut c)?;
    let root_nrec = usize::from(c.u16()?);
    if record_size == 0 || node_size < PREFIX + record_size {
        return Err(corrupt(format!(
            "node size {node_size} with record size {record_size}"
        )));
    }
    if node_size as u64 > f.io.size() {
        return Err(corrupt(format!("node size {node_size} exceeds the file")));
    }
    if depth > MAX_DEPTH {
        return Err(limit(format!("v2 B-tree depth {depth}")));
    }
    let leaf_max = (node_size - PREFIX) / record_size;
    let nrec_width = limit_enc_size(leaf_max as u64);
    let mut max_nrec = vec![leaf_max];
    let mut cum_max = vec![leaf_max as u64];
    let mut cum_width = vec![0usize];
    for d in 1..=depth {
        let ptr = f.fmt.addr_len() + nrec_width + cum_width[d - 1];
        let max = node_size.saturating_sub(PREFIX + ptr) / (record_size + ptr);
        if max == 0 {
            return Err(corrupt(format!(
                "internal nodes at depth {d} hold no records"
            )));
        }
        let cum = (max as u64 + 1)
            .saturating_mul(cum_max[d - 1])
            .saturating_add(max as u64);
        max_nrec.push(max);
        cum_max.push(cum);
        cum_width.push(limit_enc_size(cum));
    }
    Ok(Header {
        tree_type,
        node_size,
        record_size,
        nrec_width,
        max_nrec,
        cum_width,
        root,
        root_nrec,
        depth,
    })
}

struct Walk<'a, 'r> {
    f: &'a FileCtx<'r>,
    h: &'a Header,
    place: &'a Place,
    seen: Visited,
}

impl<'a> Walk<'a, '_> {
    fn visit(
        &'a self,
        addr: u64,
        nrec: usize,
        depth: usize,
    ) -> BoxFuture<'a, Result<Vec<Bytes>, Hdf5Error>> {
        Box::pin(async move {
            let field = || format!("v2 B-tree node at {addr:#x}");
            self.seen.enter(addr, self.place, field())?;
            let block = self
                .f
                .io
                .read(addr, self.h.node_size as u64)
                .await
                .at(self.place, field)?;
            let (records, children) = self.parse_node(&block, nrec, depth).at(self.place, field)?;
            if depth == 0 {
                return Ok(records);
            }
            let subtrees =
                try_join_all(children.iter().map(|&(a, n)| self.visit(a, n, depth - 1))).await?;
            let mut out = Vec::new();
            let mut records = records.into_iter();
            for sub in subtrees {
                out.extend(sub);
                out.extend(records.next());
            }
            Ok(out)
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse_node(
        &self,
        block: &Bytes,
        nrec: usize,
        depth: usize,
    ) -> Result<(Vec<Bytes>, Vec<(u64, usize)>), Hdf5ErrorKind> {
        let h = self.h;
        let max = h.max_nrec.get(depth).copied().unwrap_or(0);
        if nrec > max {
            return Err(corrupt(format!(
                "{nrec} records in a node of at most {max}"
            )));
        }
        let mut c = Cursor::new(block);
        c.signature(if depth == 0 { b"BTLF" } else { b"BTIN" })?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Hdf5ErrorKind::UnsupportedVersion {
                what: "v2 B-tree node",
                version,
            });
        }
        let tree_type = c.u8()?;
        if tree_type != h.tree_type {
            return Err(corrupt(format!(
                "node of tree type {tree_type} in a tree of type {}",
                h.tree_type
            )));
        }
        let mut records = Vec::with_capacity(nrec);
        for _ in 0..nrec {
            let start = c.pos();
            c.skip(h.record_size)?;
            records.push(block.slice(start..start + h.record_size));
        }
        let mut children = Vec::new();
        if depth > 0 {
            for _ in 0..=nrec {
                let a = self
                    .f
                    .fmt
                    .addr(&mut c)?
                    .ok_or_else(|| corrupt("undefined child node address"))?;
                let n = c.uint(h.nrec_width)? as usize;
                if depth > 1 {
                    c.skip(h.cum_width[depth - 1])?;
                }
                children.push((a, n));
            }
        }
        let end = c.pos() + 4;
        checksum::verify(block.get(..end).ok_or(Hdf5ErrorKind::Truncated {
            needed: end as u64,
            available: block.len() as u64,
        })?)?;
        Ok((records, children))
    }
}
