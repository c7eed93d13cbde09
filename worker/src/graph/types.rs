//! The peer's network and node configuration structs (`NnNetConfig`, `NnNodeConfig` and their
//! parts) as plain Rust data. Field order and integer widths follow the wire layout of spec §5.3,
//! so a codec can write them field by field.

use std::fmt;

use super::params::OpParams;
use super::GraphError;
use crate::float_type::FloatType;

/// A tensor shape with its element type: the peer's `NnSize3D` (40 bytes on the wire).
///
/// `(z, y, x)`: for activations `y` is the batch row and `x` the feature; for matmul weights
/// `y = n` (inputs) and `x = d` (outputs), stored as `d` rows of `n`; `z` stacks MoE experts
/// or expert slots. The derived byte counts are computed once, when the size is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Size3D {
    float_type: FloatType,
    z: u32,
    y: u32,
    x: u32,
    length: u64,
    n_bytes: u64,
    n_bytes_xy: u64,
}

impl Size3D {
    /// The "no weights" size (`size0()`): unknown type, every field zero.
    pub const EMPTY: Size3D = Size3D {
        float_type: FloatType::Unknown,
        z: 0,
        y: 0,
        x: 0,
        length: 0,
        n_bytes: 0,
        n_bytes_xy: 0,
    };

    /// `z × y × x` elements of `float_type`. Fails when the type is unknown (and the size is not
    /// all zero), a quantised row length is not a multiple of 32, or a byte count overflows.
    pub fn new(float_type: FloatType, z: u32, y: u32, x: u32) -> Result<Size3D, GraphError> {
        if float_type == FloatType::Unknown && z == 0 && y == 0 && x == 0 {
            return Ok(Size3D::EMPTY);
        }
        let bad = || GraphError::BadSize {
            float_type,
            z,
            y,
            x,
        };
        let xy = u64::from(y) * u64::from(x);
        let length = xy.checked_mul(u64::from(z)).ok_or_else(bad)?;
        let n_bytes = float_type.bytes(length).ok_or_else(bad)?;
        let n_bytes_xy = float_type.bytes(xy).ok_or_else(bad)?;
        Ok(Size3D {
            float_type,
            z,
            y,
            x,
            length,
            n_bytes,
            n_bytes_xy,
        })
    }

    /// `size1D`: one row of `x`.
    pub fn d1(float_type: FloatType, x: u32) -> Result<Size3D, GraphError> {
        Size3D::new(float_type, 1, 1, x)
    }

    /// `size2D`: `y` rows of `x`.
    pub fn d2(float_type: FloatType, y: u32, x: u32) -> Result<Size3D, GraphError> {
        Size3D::new(float_type, 1, y, x)
    }

    /// Element type.
    pub fn float_type(&self) -> FloatType {
        self.float_type
    }
    /// Planes (experts, expert slots).
    pub fn z(&self) -> u32 {
        self.z
    }
    /// Rows per plane.
    pub fn y(&self) -> u32 {
        self.y
    }
    /// Elements per row.
    pub fn x(&self) -> u32 {
        self.x
    }
    /// `z·y·x` elements.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// Bytes of all `z·y·x` elements.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }
    /// Bytes of one plane (`y·x` elements).
    pub fn n_bytes_xy(&self) -> u64 {
        self.n_bytes_xy
    }
    /// Bytes of one row (`x` elements); 0 for the empty size.
    pub fn row_bytes(&self) -> u64 {
        self.float_type.bytes(u64::from(self.x)).unwrap_or(0)
    }

    /// The 40 wire bytes: `i32 floatType, u32 z, y, x, u64 length, nBytes, nBytesXY`.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..4].copy_from_slice(&self.float_type.code().to_le_bytes());
        b[4..8].copy_from_slice(&self.z.to_le_bytes());
        b[8..12].copy_from_slice(&self.y.to_le_bytes());
        b[12..16].copy_from_slice(&self.x.to_le_bytes());
        b[16..24].copy_from_slice(&self.length.to_le_bytes());
        b[24..32].copy_from_slice(&self.n_bytes.to_le_bytes());
        b[32..40].copy_from_slice(&self.n_bytes_xy.to_le_bytes());
        b
    }

    /// Parses 40 wire bytes, checking that the stored derived values match the shape.
    pub fn from_bytes(b: &[u8; 40]) -> Result<Size3D, GraphError> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let code = u32_at(0) as i32;
        let float_type = FloatType::from_code(code).ok_or(GraphError::BadCode {
            what: "float type",
            code: code as u32,
        })?;
        let s = Size3D::new(float_type, u32_at(4), u32_at(8), u32_at(12))?;
        if (s.length, s.n_bytes, s.n_bytes_xy) != (u64_at(16), u64_at(24), u64_at(32)) {
            return Err(GraphError::Inconsistent("size3D derived fields"));
        }
        Ok(s)
    }
}

impl fmt::Display for Size3D {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}×{}×{})", self.float_type, self.z, self.y, self.x)
    }
}

/// The peer's `NnOpCode`, with its numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum OpCode {
    /// 0: add every node's slice of a pipe row into a buffer row.
    MergeAdd = 0,
    /// 1: sum over z.
    MergeSum = 1,
    /// 2: token → embedding row (root only).
    Embedding = 2,
    /// 3: inverse RMS per column group.
    InvRms = 3,
    /// 4: `(x·inv)·w`.
    RmsNorm = 4,
    /// 5: matrix × vector, dense or MoE.
    Matmul = 5,
    /// 6: rotary embedding.
    Rope = 6,
    /// 7: grouped-query attention over the KV cache.
    MultiheadAtt = 7,
    /// 8: GELU (never used by the llm graph).
    Gelu = 8,
    /// 9: SiLU in place.
    Silu = 9,
    /// 10: element-wise product with another buffer.
    Mul = 10,
    /// 11: multiply each (z, row) by a scalar from another buffer.
    Scale = 11,
    /// 12: copy / quantise / dequantise.
    Cast = 12,
    /// 13: quantise into z = 0 and repeat into every z.
    RepeatZ = 13,
    /// 14: KV-cache write at the row's position.
    Shift = 14,
    /// 15: softmax in place.
    Softmax = 15,
    /// 16: MoE top-k.
    MoeGate = 16,
}

impl OpCode {
    /// Every op code, in code order.
    pub const ALL: [OpCode; 17] = [
        OpCode::MergeAdd,
        OpCode::MergeSum,
        OpCode::Embedding,
        OpCode::InvRms,
        OpCode::RmsNorm,
        OpCode::Matmul,
        OpCode::Rope,
        OpCode::MultiheadAtt,
        OpCode::Gelu,
        OpCode::Silu,
        OpCode::Mul,
        OpCode::Scale,
        OpCode::Cast,
        OpCode::RepeatZ,
        OpCode::Shift,
        OpCode::Softmax,
        OpCode::MoeGate,
    ];

    /// The wire code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The op with this wire code.
    pub fn from_code(code: u32) -> Result<OpCode, GraphError> {
        OpCode::ALL
            .get(code as usize)
            .copied()
            .ok_or(GraphError::BadCode {
                what: "op code",
                code,
            })
    }

    /// The peer's name (`opCodeToString`).
    pub fn name(self) -> &'static str {
        match self {
            OpCode::MergeAdd => "MERGE_ADD",
            OpCode::MergeSum => "MERGE_SUM",
            OpCode::Embedding => "EMBEDDING",
            OpCode::InvRms => "INV_RMS",
            OpCode::RmsNorm => "RMS_NORM",
            OpCode::Matmul => "MATMUL",
            OpCode::Rope => "ROPE",
            OpCode::MultiheadAtt => "MULTIHEAD_ATT",
            OpCode::Gelu => "GELU",
            OpCode::Silu => "SILU",
            OpCode::Mul => "MUL",
            OpCode::Scale => "SCALE",
            OpCode::Cast => "CAST",
            OpCode::RepeatZ => "REPEAT_Z",
            OpCode::Shift => "SHIFT",
            OpCode::Softmax => "SOFTMAX",
            OpCode::MoeGate => "MOE_GATE",
        }
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a pointer points (`NnPointerSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PointerSource {
    /// 0: a pipe of the net config (shared between nodes).
    Pipe = 0,
    /// 1: a buffer of this node.
    Buffer = 1,
}

/// How a pointer addresses its source (`NnPointerType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PointerType {
    /// 0: the whole source as one flat vector.
    Raw = 0,
    /// 1: row `b` of each plane is batch row `b`.
    Batch = 1,
    /// 2: like `Batch`, then this node's `x / nNodes` slice of the row.
    BatchedSlice = 2,
}

/// An op's input or output (`NnPointerConfig`, 12 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PointerConfig {
    /// Pipe or buffer.
    pub source: PointerSource,
    /// Index into the pipes or the node's buffers.
    pub index: u32,
    /// Addressing mode.
    pub kind: PointerType,
}

impl PointerConfig {
    /// `pointerBatchConfig`.
    pub fn batch(source: PointerSource, index: u32) -> PointerConfig {
        PointerConfig {
            source,
            index,
            kind: PointerType::Batch,
        }
    }
    /// `pointerBatchedSliceConfig`.
    pub fn batched_slice(source: PointerSource, index: u32) -> PointerConfig {
        PointerConfig {
            source,
            index,
            kind: PointerType::BatchedSlice,
        }
    }
    /// `pointerRawConfig`.
    pub fn raw(source: PointerSource, index: u32) -> PointerConfig {
        PointerConfig {
            source,
            index,
            kind: PointerType::Raw,
        }
    }

    /// The 12 wire bytes: `u32 source, u32 index, u32 type`.
    pub fn to_bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&(self.source as u32).to_le_bytes());
        b[4..8].copy_from_slice(&self.index.to_le_bytes());
        b[8..12].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b
    }

    /// Parses 12 wire bytes.
    pub fn from_bytes(b: &[u8; 12]) -> Result<PointerConfig, GraphError> {
        let at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let source = match at(0) {
            0 => PointerSource::Pipe,
            1 => PointerSource::Buffer,
            code => {
                return Err(GraphError::BadCode {
                    what: "pointer source",
                    code,
                })
            }
        };
        let kind = match at(8) {
            0 => PointerType::Raw,
            1 => PointerType::Batch,
            2 => PointerType::BatchedSlice,
            code => {
                return Err(GraphError::BadCode {
                    what: "pointer type",
                    code,
                })
            }
        };
        Ok(PointerConfig {
            source,
            index: at(4),
            kind,
        })
    }
}

/// How a pipe is exchanged after a segment's ops (`NnSyncType`, spec §5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SyncType {
    /// 0: the root's rows to every worker.
    WithRoot = 0,
    /// 1: every node's own slice of each row to every other node.
    NodeSlices = 1,
    /// 2: every worker's own slice of each row to the root only.
    NodeSlicesExceptRoot = 2,
}

impl SyncType {
    /// The type with this wire code.
    pub fn from_code(code: u32) -> Result<SyncType, GraphError> {
        Ok(match code {
            0 => SyncType::WithRoot,
            1 => SyncType::NodeSlices,
            2 => SyncType::NodeSlicesExceptRoot,
            _ => {
                return Err(GraphError::BadCode {
                    what: "sync type",
                    code,
                })
            }
        })
    }
}

/// One pipe exchange of a segment (`NnSyncConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncConfig {
    /// Which pipe.
    pub pipe_index: u32,
    /// How.
    pub sync_type: SyncType,
}

/// A named pipe or buffer (`NnPipeConfig` / `NnBufferConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSize {
    /// Name as sent on the wire (without the NUL).
    pub name: String,
    /// Shape and type.
    pub size: Size3D,
}

/// One op of a segment (`NnOpConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct OpConfig {
    /// What the op computes.
    pub code: OpCode,
    /// Name; with `index` it identifies the op for weight loading.
    pub name: String,
    /// Layer index (0 for the start and end segments).
    pub index: u32,
    /// Input pointer.
    pub input: PointerConfig,
    /// Output pointer.
    pub output: PointerConfig,
    /// Shape of the op's weights, [`Size3D::EMPTY`] when it has none.
    pub weight_size: Size3D,
    /// The op's typed config struct.
    pub params: OpParams,
}

/// Ops followed by syncs (`NnSegmentConfig`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SegmentConfig {
    /// Run in order, with a barrier between ops.
    pub ops: Vec<OpConfig>,
    /// Run after the ops, in order.
    pub syncs: Vec<SyncConfig>,
}

/// The config shared by all nodes (`NnNetConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Rows per pipe and buffer (the CLI always uses 32).
    pub n_batches: u32,
    /// Root plus workers.
    pub n_nodes: u32,
    /// Pipes, exchanged between nodes.
    pub pipes: Vec<NamedSize>,
    /// Pipe indices the GPU backend uploads before a forward; the CPU path ignores them.
    pub pre_syncs: Vec<u32>,
}

/// One node's buffers and segments (`NnNodeConfig`).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// 0 = root.
    pub node_index: u32,
    /// Node-local buffers.
    pub buffers: Vec<NamedSize>,
    /// Segments in execution order.
    pub segments: Vec<SegmentConfig>,
}

impl NodeConfig {
    /// Every op with its segment index, in execution order.
    pub fn ops(&self) -> impl Iterator<Item = (usize, &OpConfig)> {
        self.segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| seg.ops.iter().map(move |op| (s, op)))
    }

    /// The op named `(name, index)`, as the weight loader looks it up.
    pub fn find_op(&self, name: &str, index: u32) -> Option<&OpConfig> {
        self.ops()
            .map(|(_, op)| op)
            .find(|op| op.index == index && op.name == name)
    }
}
