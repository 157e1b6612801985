//! A checked little-endian byte cursor: every read is bounds-checked so malformed
//! metadata yields an error instead of a panic.

use super::Hdf5ErrorKind;

/// Reads fixed-width little-endian fields from a byte slice, tracking the position.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self, needed: usize) -> Hdf5ErrorKind {
        Hdf5ErrorKind::Truncated {
            needed: needed as u64,
            available: self.remaining() as u64,
        }
    }

    /// The next `n` bytes, advancing past them.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Hdf5ErrorKind> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated(n))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(n))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Hdf5ErrorKind> {
        self.bytes(n).map(|_| ())
    }

    /// Move to absolute position `pos` within the buffer.
    pub(crate) fn seek(&mut self, pos: usize) -> Result<(), Hdf5ErrorKind> {
        if pos > self.buf.len() {
            return Err(Hdf5ErrorKind::Truncated {
                needed: pos as u64,
                available: self.buf.len() as u64,
            });
        }
        self.pos = pos;
        Ok(())
    }

    /// Skip to the next multiple of `align` (relative to the buffer start).
    pub(crate) fn align(&mut self, align: usize) -> Result<(), Hdf5ErrorKind> {
        let pad = (align - self.pos % align) % align;
        self.skip(pad)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Hdf5ErrorKind> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Hdf5ErrorKind> {
        Ok(self.uint(2)? as u16)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Hdf5ErrorKind> {
        Ok(self.uint(4)? as u32)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Hdf5ErrorKind> {
        self.uint(8)
    }

    /// An unsigned little-endian integer of `n` ≤ 8 bytes.
    pub(crate) fn uint(&mut self, n: usize) -> Result<u64, Hdf5ErrorKind> {
        if n > 8 {
            return Err(Hdf5ErrorKind::Corrupt(format!(
                "integer field of {n} bytes (at most 8 supported)"
            )));
        }
        let b = self.bytes(n)?;
        Ok(le_uint(b))
    }

    /// Check a 4-byte signature such as `OHDR`.
    pub(crate) fn signature(&mut self, expected: &[u8; 4]) -> Result<(), Hdf5ErrorKind> {
        let found = self.bytes(4)?;
        if found != expected {
            return Err(Hdf5ErrorKind::BadSignature {
                expected: String::from_utf8_lossy(expected).into_owned(),
                found: String::from_utf8_lossy(found).into_owned(),
            });
        }
        Ok(())
    }
}

/// Little-endian unsigned integer from up to 8 bytes.
pub(crate) fn le_uint(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut c = Cursor::new(&data);
        assert_eq!(c.u8().unwrap(), 1);
        assert_eq!(c.u16().unwrap(), 0x0302);
        assert_eq!(c.uint(3).unwrap(), 0x060504);
        assert!(matches!(
            c.u32(),
            Err(Hdf5ErrorKind::Truncated {
                needed: 4,
                available: 3
            })
        ));
        assert_eq!(c.remaining(), 3);
        assert!(c.uint(9).is_err());
        assert!(c.bytes(usize::MAX).is_err());
    }
}
