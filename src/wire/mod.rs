// SPDX-License-Identifier: MPL-2.0
//! The wire protocol: pure encoding and decoding of frames, no I/O.
//!
//! Every frame is a 12-byte header followed by `len` bytes of body:
//!
//! ```text
//! u32 len | u8 type | u8 flags | u16 n_fds | u32 id | body[len]
//! ```
//!
//! All integers are little-endian. The layout of each body is in [`frame`], of each value in
//! [`value`], and the whole protocol is described in ARCHITECTURE.md.

mod check;
pub(crate) mod codec;
pub mod frame;
pub(crate) mod metas;
pub(crate) mod objects;
pub(crate) mod value;

pub use check::{answer_fits, stays_local, usable_answer};
pub use frame::*;
pub use metas::carried_apis as carried_meta_apis;

/// Everything that can be wrong with bytes from the peer. Each is a clean error for the element
/// to report; none is a panic.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("truncated: wanted {wanted} bytes, {available} available")]
    Truncated { wanted: usize, available: usize },
    #[error("{0} unexpected bytes at the end of a frame")]
    TrailingBytes(usize),
    #[error("{what} of {len} bytes is longer than the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{count} {what} is more than the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("invalid UTF-8 or embedded NUL in a string")]
    BadUtf8,
    #[error("invalid name {0:?}")]
    BadName(String),
    #[error("invalid {what}: {value}")]
    BadEnum { what: &'static str, value: i64 },
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    #[error("unknown value type {0}")]
    UnknownValueType(u8),
    #[error("empty or inverted range, or zero denominator")]
    BadRange,
    #[error("values of incompatible types in one list or array")]
    MixedList,
    #[error("not an rsipcpipeline peer (bad magic)")]
    BadMagic,
    #[error("file descriptors attached to a frame that takes none")]
    UnexpectedFds,
    #[error("{0}")]
    BadMeta(&'static str),
    #[error("memory from the peer refused: {0}")]
    BadMemory(String),
    #[error("a {0} without the structure GStreamer always gives one of its type")]
    NoStructure(&'static str),
    #[error(
        "a {what} without its field {field:?} of the expected type, or with an unusable value there"
    )]
    MissingField { what: &'static str, field: String },
    #[error("too many names this process never saw, up to {0:?} (GStreamer keeps each for good)")]
    NewNames(String),
    #[error("the connection of a stream is not a socket")]
    NotASocket,
    #[error("the connection of a stream is a socket, but not a unix stream socket")]
    NotAUnixStream,
    #[error("a caps event or accept-caps query with caps that are not fixed")]
    UnfixedCaps,
    #[error("a {what} whose field {field:?} holds a value GStreamer refuses there")]
    BadValue {
        what: &'static str,
        field: &'static str,
    },
    #[error("a NULL {0}, which GStreamer cannot print")]
    NullValue(&'static str),
    #[error("a {0:?} message, which stays in the pipeline that posts it")]
    StaysLocal(gst::MessageType),
}

#[cfg(test)]
mod metas_tests;
#[cfg(test)]
mod objects_tests;
#[cfg(test)]
mod tests;
