//! One storage interface for model weights, and the per-node slicing of spec §3.
//!
//! [`WeightStore`] hands out whole tensors in file encoding; [`slice_for_node`] cuts the part
//! one node computes with, byte for byte what the root sends that node (spec §5.4). The
//! memory-mapped [`ModelFile`] is the only store today; a streaming or LRU-cached store can
//! return [`WeightRef::Shared`] buffers behind the same trait.

use crate::float_type::FloatType;
use crate::model::{ModelError, ModelFile, ModelHeader, Split, TensorId, TensorIndex, TensorInfo};
use std::ops::{Deref, Range};
use std::sync::Arc;

/// Bytes of a tensor or of a slice of one: borrowed from a map, shared from a cache, or owned
/// (column slices are gathered into a new buffer).
#[derive(Clone, Debug)]
pub enum WeightRef<'a> {
    /// Borrowed, e.g. from a memory map.
    Borrowed(&'a [u8]),
    /// A range of a shared buffer, e.g. a cache entry.
    Shared(Arc<[u8]>, Range<usize>),
    /// An owned copy.
    Owned(Vec<u8>),
}

impl Deref for WeightRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WeightRef::Borrowed(b) => b,
            WeightRef::Shared(a, r) => &a[r.clone()],
            WeightRef::Owned(v) => v,
        }
    }
}

impl<'a> WeightRef<'a> {
    /// A sub-range, without copying. `range` must lie inside `self` (checked by the caller).
    fn sub(self, range: Range<usize>) -> WeightRef<'a> {
        match self {
            WeightRef::Borrowed(b) => WeightRef::Borrowed(&b[range]),
            WeightRef::Shared(a, r) => {
                WeightRef::Shared(a, r.start + range.start..r.start + range.end)
            }
            WeightRef::Owned(v) => WeightRef::Owned(v[range].to_vec()),
        }
    }

    /// The bytes as an owned vector (copies unless already owned).
    pub fn into_owned(self) -> Vec<u8> {
        match self {
            WeightRef::Owned(v) => v,
            other => other.to_vec(),
        }
    }
}

/// Where a model's weights come from.
pub trait WeightStore: Send + Sync {
    /// The model's header.
    fn header(&self) -> &ModelHeader;
    /// The model's tensors.
    fn index(&self) -> &TensorIndex;
    /// The whole tensor `id`, in file encoding, `rows · row_bytes` bytes.
    fn tensor(&self, id: TensorId) -> Result<WeightRef<'_>, ModelError>;
}

impl WeightStore for ModelFile {
    fn header(&self) -> &ModelHeader {
        ModelFile::header(self)
    }
    fn index(&self) -> &TensorIndex {
        ModelFile::index(self)
    }
    fn tensor(&self, id: TensorId) -> Result<WeightRef<'_>, ModelError> {
        ModelFile::tensor(self, id).map(WeightRef::Borrowed)
    }
}

/// Which bytes of a tensor one node gets: `runs` runs of `run_bytes` bytes, the first at byte
/// `start` of the tensor and each next one `stride` bytes further. The node's local matrix is
/// `[rows][cols]` in the tensor's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceLayout {
    /// Offset of the first run inside the tensor.
    pub start: u64,
    /// Length of each run.
    pub run_bytes: u64,
    /// Distance between run starts.
    pub stride: u64,
    /// Number of runs.
    pub runs: u64,
    /// Local output rows.
    pub rows: usize,
    /// Local input columns.
    pub cols: usize,
}

impl SliceLayout {
    /// Total bytes of the slice (the peer's `sliceSize.nBytes`).
    pub fn bytes(&self) -> u64 {
        self.run_bytes * self.runs
    }

    /// Whether the slice is one contiguous byte range of the tensor.
    pub fn is_contiguous(&self) -> bool {
        self.runs == 1 || self.stride == self.run_bytes
    }

    /// Copies the slice of `tensor` (the whole tensor's bytes) into `dst` (`bytes()` long).
    pub fn gather_into(&self, tensor: &[u8], dst: &mut [u8]) -> Result<(), ModelError> {
        let end = self.start + self.stride * (self.runs.max(1) - 1) + self.run_bytes;
        if end > tensor.len() as u64 || dst.len() as u64 != self.bytes() {
            return Err(ModelError::Shape(format!(
                "slice layout {self:?} does not fit a {}-byte tensor and a {}-byte buffer",
                tensor.len(),
                dst.len()
            )));
        }
        let run = self.run_bytes as usize;
        for (r, out) in dst
            .chunks_exact_mut(run.max(1))
            .enumerate()
            .take(self.runs as usize)
        {
            let at = (self.start + self.stride * r as u64) as usize;
            out.copy_from_slice(&tensor[at..at + run]);
        }
        Ok(())
    }

    /// The slice of `tensor`: borrowed when contiguous, gathered into a new buffer otherwise.
    pub fn gather<'a>(&self, tensor: WeightRef<'a>) -> Result<WeightRef<'a>, ModelError> {
        let len = self.bytes();
        if self.is_contiguous() {
            if self.start + len > tensor.len() as u64 {
                return Err(ModelError::Shape(format!(
                    "slice {self:?} is outside a {}-byte tensor",
                    tensor.len()
                )));
            }
            return Ok(tensor.sub(self.start as usize..(self.start + len) as usize));
        }
        let mut out = vec![0u8; len as usize];
        self.gather_into(&tensor, &mut out)?;
        Ok(WeightRef::Owned(out))
    }
}

/// The part of `info` that node `node` of `n_nodes` holds (spec §3):
/// * rows (q, k, v, w1, w3, classifier): rows `[k·d0, (k+1)·d0)` with `d0 = rows / n`, one run;
/// * columns (wo, w2): for every row, columns `[k·c0, (k+1)·c0)` with `c0 = cols / n`, which
///   must be whole blocks of the encoding;
/// * full copies (norms, MoE gate): the whole tensor;
/// * the embedding: the whole tensor for node 0, an error for other nodes.
pub fn slice_layout(
    info: &TensorInfo,
    node: usize,
    n_nodes: usize,
) -> Result<SliceLayout, ModelError> {
    let fail = |why: String| ModelError::Slice {
        tensor: info.id,
        node,
        n_nodes,
        why,
    };
    if n_nodes == 0 || node >= n_nodes {
        return Err(fail("node index out of range".into()));
    }
    let row_bytes = info.row_bytes();
    let whole = SliceLayout {
        start: 0,
        run_bytes: info.bytes,
        stride: info.bytes,
        runs: 1,
        rows: info.rows,
        cols: info.cols,
    };
    match info.split() {
        Split::Full => Ok(whole),
        Split::RootOnly if node == 0 => Ok(whole),
        Split::RootOnly => Err(fail("the tensor stays on the root".into())),
        Split::Rows => {
            if !info.rows.is_multiple_of(n_nodes) {
                return Err(fail(format!(
                    "{} rows are not divisible by the node count",
                    info.rows
                )));
            }
            let d0 = (info.rows / n_nodes) as u64;
            let run = d0 * row_bytes;
            Ok(SliceLayout {
                start: node as u64 * run,
                run_bytes: run,
                stride: run,
                runs: 1,
                rows: d0 as usize,
                cols: info.cols,
            })
        }
        Split::Cols => {
            let c0 = info.cols / n_nodes;
            if !info.cols.is_multiple_of(n_nodes) || !c0.is_multiple_of(info.float_type.block_len())
            {
                return Err(fail(format!(
                    "{} columns do not split into whole {} blocks per node",
                    info.cols, info.float_type
                )));
            }
            let run = info
                .float_type
                .bytes(c0 as u64)
                .ok_or(ModelError::SizeOverflow)?;
            Ok(SliceLayout {
                start: node as u64 * run,
                run_bytes: run,
                stride: row_bytes,
                runs: info.rows as u64,
                rows: info.rows,
                cols: c0,
            })
        }
    }
}

/// One node's share of one tensor, ready to store or send (spec §5.4).
#[derive(Clone, Debug)]
pub struct NodeSlice<'a> {
    /// The tensor.
    pub id: TensorId,
    /// Peer's op name that receives it.
    pub op_name: &'static str,
    /// Peer's op index (the layer; 0 for global tensors).
    pub op_index: u32,
    /// Byte offset inside the op's weight buffer: `expert · bytes.len()` for expert matrices,
    /// 0 otherwise.
    pub op_offset: u64,
    /// Encoding.
    pub float_type: FloatType,
    /// Local output rows.
    pub rows: usize,
    /// Local input columns.
    pub cols: usize,
    /// The bytes, `[rows][cols]` in `float_type`.
    pub bytes: WeightRef<'a>,
}

/// Node `node`'s share of tensor `id` from `store`. Checks the model's node-count rules
/// (spec §7) first.
pub fn slice_for_node<'a, S: WeightStore + ?Sized>(
    store: &'a S,
    id: TensorId,
    node: usize,
    n_nodes: usize,
) -> Result<NodeSlice<'a>, ModelError> {
    store.header().validate_for_nodes(n_nodes)?;
    let info = *store.index().require(id)?;
    let layout = slice_layout(&info, node, n_nodes)?;
    let bytes = layout.gather(store.tensor(id)?)?;
    Ok(NodeSlice {
        id,
        op_name: info.op_name(),
        op_index: info.op_index(),
        op_offset: u64::from(id.expert.unwrap_or(0)) * layout.bytes(),
        float_type: info.float_type,
        rows: layout.rows,
        cols: layout.cols,
        bytes,
    })
}

/// Every slice node `node` holds, in file order (the order the root sends them); the
/// embedding only for node 0.
pub fn node_slices<'a, S: WeightStore + ?Sized>(
    store: &'a S,
    node: usize,
    n_nodes: usize,
) -> impl Iterator<Item = Result<NodeSlice<'a>, ModelError>> + 'a {
    store
        .index()
        .entries()
        .iter()
        .filter(move |e| node == 0 || e.split() != Split::RootOnly)
        .map(move |e| slice_for_node(store, e.id, node, n_nodes))
}
