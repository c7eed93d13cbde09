//! Streaming `.m` writer: header, then the tensors in file order from f32 data, quantised to
//! Q40 where the tensor's type is Q40.

use super::header::ModelHeader;
use super::tensors::{TensorId, TensorIndex, TensorInfo};
use super::ModelError;
use crate::float_type::FloatType;
use airllm_kernels::{BlockQ40, Kernels, QK};
use std::io::Write;

/// Writes one model. Feed each tensor's rows in file order with [`write`](Self::write) (in as
/// many calls as convenient, whole rows each time), then call [`finish`](Self::finish).
pub struct ModelWriter<W: Write> {
    out: W,
    header: ModelHeader,
    index: TensorIndex,
    next: usize,
    rows_done: usize,
    written: u64,
    kernels: Kernels,
    blocks: Vec<BlockQ40>,
    bytes: Vec<u8>,
}

impl<W: Write> ModelWriter<W> {
    /// Writes `header` (canonical pairs, see [`ModelHeader::to_bytes`]) to `out` and prepares
    /// the tensor sequence. `header.header_size` is recomputed from the pairs written.
    pub fn new(mut out: W, header: &ModelHeader) -> Result<ModelWriter<W>, ModelError> {
        let bytes = header.to_bytes();
        let header = ModelHeader::parse(&bytes, None)?;
        let index = TensorIndex::build(&header)?;
        out.write_all(&bytes)
            .map_err(|e| ModelError::io("<model output>", e))?;
        Ok(ModelWriter {
            out,
            header,
            index,
            next: 0,
            rows_done: 0,
            written: bytes.len() as u64,
            kernels: Kernels::current(),
            blocks: Vec::new(),
            bytes: Vec::new(),
        })
    }

    /// The header as written (and as a reader will parse it).
    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    /// The index of the file being written.
    pub fn index(&self) -> &TensorIndex {
        &self.index
    }

    /// The tensor the next rows belong to, or `None` when all are written.
    pub fn current(&self) -> Option<&TensorInfo> {
        self.index.entries().get(self.next)
    }

    /// Rows of the current tensor written so far.
    pub fn rows_done(&self) -> usize {
        self.rows_done
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Final file size.
    pub fn total_bytes(&self) -> u64 {
        self.index.file_size()
    }

    /// Appends whole rows (`data.len()` a multiple of the current tensor's `cols`, not past its
    /// end) to the current tensor; moves to the next tensor when this one is complete.
    pub fn write(&mut self, data: &[f32]) -> Result<(), ModelError> {
        let info = *self
            .current()
            .ok_or_else(|| ModelError::Writer("all tensors are already written".into()))?;
        if !data.len().is_multiple_of(info.cols)
            || data.len() / info.cols > info.rows - self.rows_done
        {
            return Err(ModelError::Writer(format!(
                "{} values for {} ({} of {} rows of {} written)",
                data.len(),
                info.id,
                self.rows_done,
                info.rows,
                info.cols
            )));
        }
        self.bytes.clear();
        match info.float_type {
            FloatType::F32 => {
                self.bytes.reserve(data.len() * 4);
                for v in data {
                    self.bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            FloatType::Q40 => {
                self.blocks.clear();
                self.blocks.resize(data.len() / QK, BlockQ40::default());
                self.kernels
                    .quantize_q40(&mut self.blocks[..], data, 1, 0)
                    .map_err(|e| ModelError::Writer(format!("quantising {}: {e:?}", info.id)))?;
                self.bytes.reserve(self.blocks.len() * 18);
                for b in &self.blocks {
                    self.bytes.extend_from_slice(&b.d.to_le_bytes());
                    self.bytes.extend_from_slice(&b.qs);
                }
            }
            t => return Err(ModelError::Writer(format!("cannot encode {t} tensors"))),
        }
        self.out
            .write_all(&self.bytes)
            .map_err(|e| ModelError::io("<model output>", e))?;
        self.written += self.bytes.len() as u64;
        self.rows_done += data.len() / info.cols;
        if self.rows_done == info.rows {
            self.next += 1;
            self.rows_done = 0;
        }
        Ok(())
    }

    /// Writes the whole tensor `id`, which must be the current one.
    pub fn write_tensor(&mut self, id: TensorId, data: &[f32]) -> Result<(), ModelError> {
        match self.current() {
            Some(info)
                if info.id == id && self.rows_done == 0 && data.len() == info.rows * info.cols =>
            {
                self.write(data)
            }
            Some(info) => Err(ModelError::Writer(format!(
                "expected {} ({} values), got {id} ({} values)",
                info.id,
                info.rows * info.cols,
                data.len()
            ))),
            None => Err(ModelError::Writer(format!("{id} after the last tensor"))),
        }
    }

    /// Checks that every tensor was written, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, ModelError> {
        if let Some(info) = self.current() {
            return Err(ModelError::Writer(format!(
                "model incomplete: {} not written",
                info.id
            )));
        }
        self.out
            .flush()
            .map_err(|e| ModelError::io("<model output>", e))?;
        Ok(self.out)
    }
}
