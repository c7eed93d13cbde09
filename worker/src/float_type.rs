//! distributed-llama's `NnFloatType`, shared by the model file, the graph and the wire.

use std::fmt;

/// Element encoding of a tensor, buffer or pipe. Wire/file code in parentheses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FloatType {
    /// Unknown / none (−1): used for "no weights".
    Unknown,
    /// IEEE binary32 (0).
    F32,
    /// IEEE binary16 (1).
    F16,
    /// 18-byte blocks of 32 four-bit weights (2).
    Q40,
    /// 34-byte blocks of 32 eight-bit values (3).
    Q80,
}

impl FloatType {
    /// The peer's integer code.
    pub fn code(self) -> i32 {
        match self {
            FloatType::Unknown => -1,
            FloatType::F32 => 0,
            FloatType::F16 => 1,
            FloatType::Q40 => 2,
            FloatType::Q80 => 3,
        }
    }

    /// The type with this code, or `None` for an unknown code.
    pub fn from_code(code: i32) -> Option<FloatType> {
        Some(match code {
            -1 => FloatType::Unknown,
            0 => FloatType::F32,
            1 => FloatType::F16,
            2 => FloatType::Q40,
            3 => FloatType::Q80,
            _ => return None,
        })
    }

    /// Elements per block: 32 for the quantised types, 1 otherwise.
    pub fn block_len(self) -> usize {
        match self {
            FloatType::Q40 | FloatType::Q80 => 32,
            _ => 1,
        }
    }

    /// Bytes of `n` elements (the peer's `getBytes`), or `None` if `n` is not a whole number of
    /// blocks, the type is `Unknown`, or the size overflows.
    pub fn bytes(self, n: u64) -> Option<u64> {
        match self {
            FloatType::Unknown => None,
            FloatType::F32 => n.checked_mul(4),
            FloatType::F16 => n.checked_mul(2),
            FloatType::Q40 if n.is_multiple_of(32) => (n / 32).checked_mul(18),
            FloatType::Q80 if n.is_multiple_of(32) => (n / 32).checked_mul(34),
            _ => None,
        }
    }
}

impl fmt::Display for FloatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloatType::Unknown => "unknown",
            FloatType::F32 => "f32",
            FloatType::F16 => "f16",
            FloatType::Q40 => "q40",
            FloatType::Q80 => "q80",
        })
    }
}
