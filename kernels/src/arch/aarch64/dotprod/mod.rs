//! NEON plus the dot-product extension: `sdot` for the Q80×Q40 block dots, through `asm!`
//! because `vdotq_s32` is not stable. Reachable only after `has_dotprod()`.

pub(crate) mod matmul;
pub(crate) mod packed;

use super::neon;
use crate::dispatch::Table;

pub(crate) static TABLE: Table = Table {
    matmul_q80_q40: matmul::matmul_q80_q40,
    matmul_q80_q40_batch: matmul::matmul_q80_q40_batch,
    matmul_q80_q40_packed: packed::matmul_q80_q40_packed,
    ..neon::TABLE
};
