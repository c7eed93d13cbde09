//! A `.m` file opened for reading: header and index validated against the file length, tensor
//! bytes served from a read-only memory map without copying.

use super::header::{ModelHeader, MAX_HEADER_PAIRS};
use super::tensors::{check_len, TensorId, TensorIndex, TensorInfo};
use super::ModelError;
use crate::float_type::FloatType;
use memmap2::Mmap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Longest possible header: magic, size and the pair limit.
const MAX_HEADER_BYTES: usize = 8 + 8 * MAX_HEADER_PAIRS;

#[derive(Debug)]
enum Backing {
    Mmap(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// A validated model: header, tensor index and the file's bytes.
#[derive(Debug)]
pub struct ModelFile {
    header: ModelHeader,
    index: TensorIndex,
    data: Backing,
    path: Option<PathBuf>,
}

/// Parses the header from the start of a file of `file_len` bytes and checks that the tensors
/// it implies fill the file exactly, then builds the index. `prefix` must hold at least the
/// header (the first 520 bytes of the file, or all of it if shorter, always suffice).
pub fn parse_layout(
    prefix: &[u8],
    file_len: u64,
    max_seq_len: Option<usize>,
) -> Result<(ModelHeader, TensorIndex), ModelError> {
    let header = ModelHeader::parse(prefix, max_seq_len)?;
    // Compare sizes before building the index: a corrupt layer or expert count must not turn
    // into a huge allocation.
    check_len(TensorIndex::expected_file_size(&header)?, file_len)?;
    usize::try_from(file_len).map_err(|_| ModelError::SizeOverflow)?;
    let index = TensorIndex::build(&header)?;
    Ok((header, index))
}

impl ModelFile {
    /// Opens and validates `path`. `max_seq_len` is the `--max-seq-len` override (see
    /// [`ModelHeader::parse`]). Only the header is read before the length check; the map is
    /// created after it.
    pub fn open(
        path: impl AsRef<Path>,
        max_seq_len: Option<usize>,
    ) -> Result<ModelFile, ModelError> {
        let path = path.as_ref();
        let io = |e| ModelError::io(path, e);
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut prefix = Vec::with_capacity(MAX_HEADER_BYTES);
        (&mut file)
            .take(MAX_HEADER_BYTES as u64)
            .read_to_end(&mut prefix)
            .map_err(io)?;
        let (header, index) = parse_layout(&prefix, len, max_seq_len)?;
        // SAFETY: the map is read-only and private to this value. The OS boundary cannot stop
        // another process from truncating or rewriting the file while it is mapped; the
        // program's contract (documented on `ModelFile`) is that model files are not modified
        // while open. The length was checked above, so every index range lies inside the map.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        if map.len() as u64 != len {
            return Err(ModelError::MissingBytes {
                expected: len,
                actual: map.len() as u64,
            });
        }
        Ok(ModelFile {
            header,
            index,
            data: Backing::Mmap(map),
            path: Some(path.to_path_buf()),
        })
    }

    /// Validates an in-memory model (tests, fuzzing, models received whole).
    pub fn from_bytes(bytes: Vec<u8>, max_seq_len: Option<usize>) -> Result<ModelFile, ModelError> {
        let (header, index) = parse_layout(&bytes, bytes.len() as u64, max_seq_len)?;
        Ok(ModelFile {
            header,
            index,
            data: Backing::Owned(bytes),
            path: None,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// The tensor index.
    pub fn index(&self) -> &TensorIndex {
        &self.index
    }

    /// The path opened, if the model came from a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }

    /// Bytes of tensor `id`, in file encoding and `[rows][cols]` order, without copying.
    pub fn tensor(&self, id: TensorId) -> Result<&[u8], ModelError> {
        let info = self.index.require(id)?;
        Ok(self.tensor_bytes(info))
    }

    /// Bytes of an index entry of this file.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        // Offsets fit in usize: the whole file length was checked against usize in `parse_layout`.
        &self.bytes()[info.offset as usize..(info.offset + info.bytes) as usize]
    }

    /// An F32 tensor (norms, MoE gate, embedding) decoded into a vector, `rows · cols` floats.
    pub fn tensor_f32(&self, id: TensorId) -> Result<Vec<f32>, ModelError> {
        let info = self.index.require(id)?;
        if info.float_type != FloatType::F32 {
            return Err(ModelError::Shape(format!(
                "{id} is {}, not f32",
                info.float_type
            )));
        }
        Ok(f32_from_le(self.tensor_bytes(info)))
    }

    /// Row `token` of the F32 embedding (`dim` floats) into `out`.
    pub fn embedding_row(&self, token: usize, out: &mut [f32]) -> Result<(), ModelError> {
        let info = self
            .index
            .require(TensorId::global(super::TensorKind::Embedding))?;
        if token >= info.rows || out.len() != info.cols {
            return Err(ModelError::Shape(format!(
                "embedding row {token} into {} floats: embedding is [{}, {}]",
                out.len(),
                info.rows,
                info.cols
            )));
        }
        let row = info.cols * 4;
        let bytes = &self.tensor_bytes(info)[token * row..(token + 1) * row];
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}

/// Little-endian f32 bytes to floats; a trailing partial value is ignored.
pub fn f32_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
