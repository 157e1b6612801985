//! Jenkins' lookup3 hash, which HDF5 uses to checksum version-2+ metadata.

use super::Hdf5ErrorKind;

/// `hashlittle` from lookup3.c with an initial value of 0, over bytes.
pub(crate) fn lookup3(data: &[u8]) -> u32 {
    let init = 0xdead_beef_u32
        .wrapping_add(data.len() as u32)
        .wrapping_add(0);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |k: &[u8]| -> u32 {
        k.iter().enumerate().fold(0u32, |acc, (i, &x)| {
            acc.wrapping_add(u32::from(x) << (8 * i))
        })
    };
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    let part =
        |r: &[u8], from: usize| -> u32 { word(r.get(from..r.len().min(from + 4)).unwrap_or(&[])) };
    a = a.wrapping_add(part(rest, 0));
    b = b.wrapping_add(part(rest, 4));
    c = c.wrapping_add(part(rest, 8));
    finish(&mut a, &mut b, &mut c);
    c
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Verify that the 4 bytes at `block[len-4..]` are the lookup3 checksum of the rest.
///
/// Fuzz builds skip the comparison so the fuzzer can reach the parsers behind it.
pub(crate) fn verify(block: &[u8]) -> Result<(), Hdf5ErrorKind> {
    let Some(split) = block.len().checked_sub(4) else {
        return Err(Hdf5ErrorKind::Truncated {
            needed: 4,
            available: block.len() as u64,
        });
    };
    let (body, stored) = block.split_at(split);
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    let computed = lookup3(body);
    if stored != computed && !cfg!(fuzzing) {
        return Err(Hdf5ErrorKind::Corrupt(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lookup3;

    #[test]
    fn known_vectors() {
        // Test vectors from lookup3.c's driver (hashlittle with initval 0).
        assert_eq!(lookup3(b""), 0xdeadbeef);
        assert_eq!(lookup3(b"Four score and seven years ago"), 0x17770551);
    }
}
