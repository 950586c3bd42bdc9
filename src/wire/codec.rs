// SPDX-License-Identifier: MPL-2.0
//! Little-endian primitives shared by every payload encoder and decoder.
//!
//! The reader never trusts a length: every read checks what is left, and strings are capped
//! before they are validated, so a hostile peer can at worst produce a [`WireError`].

use super::WireError;

/// Longest string (structure name, field name, text value) accepted from the peer.
pub const MAX_STRING_LEN: usize = 1 << 20;

#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.len32(v.len());
        self.buf.extend_from_slice(v);
    }

    pub fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// Lengths are u32 on the wire; anything larger cannot be represented and is a bug of the
    /// caller (frames are far smaller than 4 GiB), so it is clamped rather than wrapped.
    pub fn len32(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Reserves a u32 to be filled in later with [`Writer::patch_u32`], for counts that are only
    /// known after the items were written (fields whose values turned out to be unsupported).
    pub fn placeholder_u32(&mut self) -> usize {
        let at = self.buf.len();
        self.u32(0);
        at
    }

    pub fn patch_u8(&mut self, at: usize, v: u8) {
        self.buf[at] = v;
    }

    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Payloads must be consumed exactly: trailing bytes mean the peer and we disagree on the
    /// layout, which is better reported than ignored.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::Truncated {
                wanted: n,
                available: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::BadEnum {
                what: "boolean",
                value: v as i64,
            }),
        }
    }

    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn f32(&mut self) -> Result<f32, WireError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    pub fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A count of items that each take at least `min_item_size` bytes: checked against what is
    /// left so that a forged count cannot make us allocate or loop beyond the payload.
    pub fn count(&mut self, max: usize, min_item_size: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(WireError::TooMany {
                what: "items",
                count: n,
                max,
            });
        }
        if n.saturating_mul(min_item_size) > self.remaining() {
            return Err(WireError::Truncated {
                wanted: n.saturating_mul(min_item_size),
                available: self.remaining(),
            });
        }
        Ok(n)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.u32()? as usize;
        if n > MAX_STRING_LEN {
            return Err(WireError::TooLong {
                what: "string",
                len: n,
                max: MAX_STRING_LEN,
            });
        }
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| WireError::BadUtf8)?;
        if s.contains('\0') {
            // GLib strings are NUL-terminated: an embedded NUL would silently cut the value.
            return Err(WireError::BadUtf8);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut w = Writer::default();
        w.u8(7);
        w.bool(true);
        w.u16(0xbeef);
        w.u32(0xdead_beef);
        w.i32(-5);
        w.u64(u64::MAX);
        w.i64(i64::MIN);
        w.f32(1.5);
        w.f64(-2.25);
        w.str("héllo");
        let buf = w.into_inner();
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert!(r.bool().unwrap());
        assert_eq!(r.u16().unwrap(), 0xbeef);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.i32().unwrap(), -5);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.i64().unwrap(), i64::MIN);
        assert_eq!(r.f32().unwrap(), 1.5);
        assert_eq!(r.f64().unwrap(), -2.25);
        assert_eq!(r.str().unwrap(), "héllo");
        r.finish().unwrap();
    }

    #[test]
    fn little_endian_on_the_wire() {
        let mut w = Writer::default();
        w.u32(1);
        assert_eq!(w.into_inner(), [1, 0, 0, 0]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(matches!(
            Reader::new(&[1, 0]).u32(),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[2]).bool(),
            Err(WireError::BadEnum { .. })
        ));
        assert!(matches!(
            Reader::new(&[2, 0, 0, 0, 0xff, 0xfe]).str(),
            Err(WireError::BadUtf8)
        ));
        assert!(matches!(
            Reader::new(&[2, 0, 0, 0, b'a', 0]).str(),
            Err(WireError::BadUtf8)
        ));
        assert!(matches!(
            Reader::new(&[0xff, 0xff, 0xff, 0x7f]).str(),
            Err(WireError::TooLong { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xff, 0xff, 0xff, 0x7f]).bytes(),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xff, 0xff, 0, 0]).count(10, 1),
            Err(WireError::TooMany { .. })
        ));
        assert!(matches!(
            Reader::new(&[5, 0, 0, 0, 1]).count(10, 1),
            Err(WireError::Truncated { .. })
        ));
        let r = Reader::new(&[1]);
        assert!(matches!(r.finish(), Err(WireError::TrailingBytes(1))));
    }
}
