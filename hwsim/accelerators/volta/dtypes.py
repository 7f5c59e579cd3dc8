"""Which V100 datapath computes each data type, and which types it has none for.

Volta (sm_70) has three arithmetic datapaths that matter here:

- **tensor cores** (HMMA.884, ``mma.m8n8k4``): fp16 inputs only, fp16 or fp32
  accumulation (PTX ISA, ``mma.m8n8k4`` is defined for ``.f16`` inputs; the
  bf16, tf32, int8, int4 and fp8 shapes need sm_80, sm_75 or sm_89);
- **CUDA cores**: FFMA (fp32), HFMA2 (two fp16 FMAs, twice the fp32 rate), DFMA
  (fp64, half the fp32 rate) and the integer pipe, whose ``dp4a`` computes a
  4-way int8 dot product with int32 accumulation per lane and clock (4 MACs, 8
  int8 operations: CUDA C Programming Guide, ``__dp4a``, compute capability 6.1
  and later; cuBLAS ``cublasGemmEx`` with ``CUDA_R_8I`` inputs runs on it);
- **SFUs** for transcendentals.

So, per operand type of a matrix product or an attention:

==========  ==================================================================
``fp16``    tensor cores (fp32 accumulation)
``fp32``    CUDA cores (SGEMM)
``tf32``    CUDA cores as fp32: tf32 is an sm_80 tensor-core input format; on
            sm_70 a tf32 request (``CUBLAS_COMPUTE_32F_FAST_TF32``, PyTorch's
            ``allow_tf32``) runs the ordinary fp32 kernels (cuBLAS: the fast
            compute types *allow* tensor cores, they do not require them)
``bf16``    CUDA cores in fp32: operands stored as bf16 (2 bytes), widened to
            fp32 in registers (a shift), FFMA; no bf16 arithmetic on sm_70
``fp64``    CUDA cores (DGEMM)
``int8``    CUDA cores, ``dp4a`` (matrix products only; int32 results)
==========  ==================================================================

Everything else is refused with one line naming the type and what to use
instead: ``fp8`` (no fp8 arithmetic before sm_89), ``int4`` (int4 MMA is
sm_75), other integer widths, and SpAtten's fixed-point words (``fix6``,
``fix12``, ...) as a *compute* type. A narrow type is accepted as the *storage*
of keys and values under an fp16 query (SpAtten's quantized KV cache): the
attention kernel reads the packed words and widens them to fp16 on the CUDA
cores before its MMAs (:data:`UNPACK_OPS_PER_ELEMENT`).
"""

from __future__ import annotations

from hwsim.errors import InputError
from hwsim.ir.dtypes import dtype_bits

# compute type of each operand type on sm_70, and whether the tensor cores run it
DATAPATH = {
    "fp16": ("fp16", True),
    "fp32": ("fp32", False),
    "tf32": ("fp32", False),
    "bf16": ("fp32", False),
    "fp64": ("fp64", False),
    "int8": ("int8", False),
}
# widening a packed narrow word to fp16 in registers: shift, mask, convert, scale
# (four integer/FP32 instructions per element, as dequantizing GEMM kernels do) (D)
UNPACK_OPS_PER_ELEMENT = 4


def element_bytes(dtype: str) -> float:
    """Bytes per element as stored (sub-byte widths packed)."""
    return dtype_bits(dtype) / 8


def _instead(dtype: str) -> str:
    if dtype == "fp8":
        return "the V100 (sm_70) has no fp8 arithmetic (fp8 needs sm_89 or later)"
    if dtype.startswith("fix"):
        return (f"the V100 has no fixed-point arithmetic for SpAtten's {dtype} (store keys "
                f"and values as {dtype} under an fp16 query instead)")
    if dtype == "int4":
        return "the V100 has no int4 arithmetic (int4 MMA needs sm_75)"
    return f"the V100 (sm_70) has no {dtype} matrix datapath"


def datapath(dtype: str, what: str) -> tuple[str, bool]:
    """(compute dtype, on tensor cores) for a ``what`` (matmul, attention) on ``dtype``."""
    path = DATAPATH.get(dtype)
    if path is None:
        article = "an" if dtype.startswith(("fp", "int", "uint")) else "a"
        raise InputError(f"volta cannot compute {article} {dtype} {what}: {_instead(dtype)}; "
                         f"use fp16 (tensor cores), fp32, bf16 or int8 (dp4a)", field="dtype")
    return path


def attention_datapath(dtype: str) -> tuple[str, bool]:
    """As :func:`datapath` for the query type of a fused attention: its softmax needs
    a floating-point type, so int8 is refused too."""
    if dtype == "int8":
        raise InputError("volta cannot compute an int8 attention: its softmax needs "
                         "floating point and the V100 has no int8 attention kernel; use fp16 "
                         "(int8 matrix products are supported, on dp4a)", field="dtype")
    return datapath(dtype, "attention")
