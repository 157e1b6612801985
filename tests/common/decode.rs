//! Decoding stored chunks with the filters our reader reports (shuffle, deflate,
//! fletcher32), to check chunk locations against libhdf5's view of the data.

use std::io::Read;

use mursst::hdf5::{ChunkLocation, Dataset};

/// The full (unclipped) chunk bytes stored at `chunk`'s location in `file`.
pub fn decode_chunk(file: &[u8], ds: &Dataset, chunk: &ChunkLocation) -> Vec<u8> {
    let start = chunk.address as usize;
    let mut data = file[start..start + chunk.size as usize].to_vec();
    for (i, f) in ds.filters.iter().enumerate().rev() {
        if chunk.filter_mask & (1 << i) != 0 {
            continue;
        }
        data = match f.id {
            1 => {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&data[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            2 => unshuffle(&data, f.client_data[0] as usize),
            3 => data[..data.len() - 4].to_vec(),
            id => panic!("filter {id} not supported by the test decoder"),
        };
    }
    data
}

fn unshuffle(data: &[u8], elem: usize) -> Vec<u8> {
    let n = data.len() / elem;
    let mut out = data.to_vec();
    for b in 0..elem {
        for i in 0..n {
            out[i * elem + b] = data[b * n + i];
        }
    }
    out
}

/// The part of a full chunk (row-major, `chunk` dims) inside `count` (the clipped extent).
pub fn clip(full: &[u8], chunk: &[u64], count: &[u64], elem: usize) -> Vec<u8> {
    let total: u64 = count.iter().product();
    let mut out = Vec::with_capacity(total as usize * elem);
    let mut pos = vec![0u64; count.len()];
    for _ in 0..total {
        let mut linear = 0u64;
        for (d, &p) in pos.iter().enumerate() {
            linear = linear * chunk[d] + p;
        }
        let at = linear as usize * elem;
        out.extend_from_slice(&full[at..at + elem]);
        for d in (0..pos.len()).rev() {
            pos[d] += 1;
            if pos[d] < count[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    out
}
