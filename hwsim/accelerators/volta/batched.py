"""The batched-small GEMM kernel: many small matrices, several to a thread block.

A batched GEMM of thousands of small products (``cublasGemmStridedBatchedEx`` /
``cublasGemmBatchedEx`` with M, N and K of a few to 64: the per-head attention
``bmm`` of short sequences, many small experts) does not fit the block tiles of
:mod:`.gemm`: a 16 x 16 product on a 32 x 32 tile pads three quarters of it, and
every block pays a load latency and a block turnover for a few kilobytes of work.
Libraries run such batches with a kernel built for them. Its published structure is
MAGMA's (Masliah, Abdelfattah, Haidar, Tomov, Baboulin, Falcou, Dongarra,
"Algorithms and optimization techniques for high-performance matrix-matrix
multiplications of very small matrices", Parallel Computing 81, 2019; the kernel
``magmablas_Xgemm_batched_smallsq``, MAGMA 2.5, ``magmablas/zgemm_batched_smallsq.cu``):

- one thread block holds several whole products (``ntcol`` of them, the block's
  third thread dimension), one group of threads per product, one thread per output
  element;
- each group loads its A and B **whole** into shared memory (every thread one
  element of each), waits at one barrier, then each thread runs the K loop over
  shared memory (one value of A and one of B per multiply-add) and writes its
  element of C: no K steps, no double buffering, no padding beyond the thread count.

The fp16 variant on the tensor cores is Abdelfattah, Tomov and Dongarra's ("Fast
batched matrix multiplication for small sizes using half-precision arithmetic on
GPUs", IPDPS 2019; "Matrix multiplication on batches of small matrices in half and
half-complex precisions", JPDC 145, 2020): the same whole-operand staging, each
product cut into the tensor-core API's 16 x 16 x 16 fragments (``wmma``, CUDA C
Programming Guide, the sm_70 shapes), one warp per 16 x 16 block of C, so M, N and K
are padded to multiples of 16 (the "discrete configurations for the Tensor Core
APIs" that their abstract names as the limit at small sizes).

How this module prices it (:func:`kernel`), in the model of :mod:`.gpu`:

- **work**: CUDA cores, ``2 m n k`` FLOPs per product (exact); tensor cores,
  ``2 M N K`` with each padded to 16;
- **shared memory**: the operands' stores, then the K loop's loads: on the CUDA
  cores each warp issues, per k, one load of A and one of B per row and column of
  its thread's outputs, each a full 128-byte wavefront (32 threads; a broadcast of
  a few distinct words costs a wavefront all the same; 64-bit words two); on the
  tensor cores each warp's fragment loads, twice the bytes it uses as in
  :func:`.mainloop.fragment_bytes_per_thread` (sm_70's quad pairs load their own
  copies);
- **issue**: on the CUDA cores a thread's K loop issues per k its ``r`` FMAs and
  ``ra + rb`` shared loads for an ``ra x rb`` register tile of ``r`` outputs, so the
  FMA pipe's share of the issue slots, :func:`.mainloop.pipe_cycles` over the two,
  is the kernel's ``loop_efficiency`` (two thirds at one output a thread in fp32:
  the kernel is shared-memory and issue bound where a tile is not);
- **memory**: each product's operands read once (a batch-shared operand once in all,
  the L2 serves its re-reads; an operand carried in the L2, :mod:`hwsim.onchip`,
  none), C written once; all of a block's loads issued before its barrier, so they
  are its bytes in flight (Little's law, :meth:`.gpu.Gpu.memory_time`); each group
  of resident blocks waits one load latency before its first multiply-add and one
  block turnover after its last (:meth:`.gpu.Gpu._pipes`).

The block: 256 threads (:data:`BLOCK_THREADS`), as many products as fit (MAGMA sizes
``ntcol`` per size from its tuning; M: 256 threads a block, the sizes' table being
per architecture and not all published); a product of more than 256 outputs gives
each thread an ``r``-output register tile. Its shared memory at most 48 KiB
(:data:`SMEM_LIMIT_BYTES`, the static limit per block, CUDA C Programming Guide,
compute capability 7.0): a product whose operands do not fit has no such kernel.

Which kernel cuBLAS runs for a small batch is not public (its kernels are closed and
its rule for picking them unpublished); so the path is a candidate of the GEMM selector
(:func:`.gemm.candidates`) like the tiles, kept when its estimate beats theirs, and
on a tie, since it executes the products' FLOPs where a tile pads them (M: that
cuBLAS's pick is as fast as this structure; MAGMA's own rule,
``magma_Xrecommend_cublas_gemm_batched``, picks its kernel or cuBLAS's per size from
timings, made on a K40c: the same rule, by measured speed).
"""

from __future__ import annotations

import math

from .dtypes import datapath
from .gpu import Gpu, Kernel, Work, cdiv
from .mainloop import WARP, matrix_flops_per_cycle_per_sm, pipe_cycles

BATCHED_SMALL_MAX = 64  # M, N and K each at most this (the sizes the path is built for)
BLOCK_THREADS = 256  # threads a block (M, see the module)
SMEM_LIMIT_BYTES = 48 * 1024  # static shared memory a block, cc 7.0 (CUDA guide)
WMMA_SIDE = 16  # wmma m16n16k16: M, N and K padded to this on the tensor cores
WAVEFRONT_BYTES = 128  # one shared-memory wavefront: 32 banks x 4 bytes
REGS = 64  # registers a thread (M: MAGMA's small kernels' counts are not published)
TYPES = ("fp16", "fp32", "fp64")  # compute types with such kernels (no int8)


def applies(g) -> bool:
    """Whether ``g`` may run as the batched-small kernel: a batch of products, each of
    M, N and K at most :data:`BATCHED_SMALL_MAX`, one operand type."""
    if g.batch < 2 or max(g.m, g.n, g.k) > BATCHED_SMALL_MAX:
        return False
    if g.b_dtype and g.b_dtype != g.dtype:
        return False
    return datapath(g.dtype, "matmul")[0] in TYPES


def register_tile(outputs: int) -> tuple[int, int, int]:
    """(r, ra, rb): outputs a thread computes for a product of ``outputs`` elements in
    a block of :data:`BLOCK_THREADS`, and its register tile's rows and columns
    (``ra x rb >= r``, as square as it can be)."""
    r = cdiv(outputs, BLOCK_THREADS)
    ra = math.isqrt(r)
    ra += ra * ra < r
    return r, ra, cdiv(r, ra)


def kernel(gpu: Gpu, g, tensor: bool) -> Kernel | None:
    """The batched-small kernel of ``g`` (see the module), ``None`` where it has
    none (:func:`applies`, or operands over the shared-memory limit). ``tensor``:
    the tensor cores may run it (the selector's rule, :func:`.gemm.tensor_aligned`)."""
    if not applies(g):
        return None
    compute, _ = datapath(g.dtype, "matmul")
    tensor = tensor and gpu.has_tensor(compute)
    ea, eb, eo = g.a_bytes, g.b_bytes, g.out_bytes
    m, n, k = g.m, g.n, g.k
    if tensor:
        pm, pn, pk = (cdiv(d, WMMA_SIDE) * WMMA_SIDE for d in (m, n, k))
        frags = (pm // WMMA_SIDE) * (pn // WMMA_SIDE)  # 16 x 16 blocks of C
        warps_one = min(frags, BLOCK_THREADS // WARP)  # one warp a block of C, at most 8
        threads_one = warps_one * WARP
        # the warps' fragment loads: each block of C reads a 16-row strip of A and a
        # 16-column strip of B over K, twice (sm_70's quad pairs, .mainloop)
        loads_one = frags * 2.0 * WMMA_SIDE * pk * (ea + eb)
        staged_one = (pm * pk * ea + pk * pn * eb)  # the padded operands, stored
        flops_one, eff = 2.0 * pm * pn * pk, 1.0
    else:
        r, ra, rb = register_tile(m * n)
        threads_one = cdiv(m * n, r)
        staged_one = m * k * ea + k * n * eb
        flops_one = 2.0 * m * n * k
        # per k, each warp: ra loads of A and rb of B, a wavefront each (two for fp64)
        per_load = max(WAVEFRONT_BYTES, WARP * ea), max(WAVEFRONT_BYTES, WARP * eb)
        loads_one = threads_one / WARP * k * (ra * per_load[0] + rb * per_load[1])
        # the FMA pipe's share of the K loop's issue slots: r FMAs and ra + rb loads
        pipe = r * pipe_cycles(matrix_flops_per_cycle_per_sm(gpu.spec, compute, False),
                               compute, False)
        eff = pipe / max(pipe, r + ra + rb)
    if staged_one > SMEM_LIMIT_BYTES:
        return None
    per_block = max(1, min(BLOCK_THREADS // threads_one, g.batch,
                           int(SMEM_LIMIT_BYTES // staged_one)))
    full, rest = divmod(g.batch, per_block)
    # HBM: each product's operands once (a batch-shared one once in all), C once
    a_hbm = 0.0 if g.a_onchip else m * k * ea * (1 if g.a_shared else g.batch)
    b_hbm = 0.0 if g.b_onchip else k * n * eb * (1 if g.b_shared else g.batch)
    out_hbm = 0.0 if g.out_onchip else g.batch * m * n * eo
    blocks = full + (1 if rest else 0)
    threads = cdiv(per_block * threads_one, WARP) * WARP

    def work(p: int) -> Work:
        share = p / g.batch  # this block's share of the batch's HBM bytes
        w = Work()
        if tensor:
            w.tensor_flops = p * flops_one
        else:
            w.cuda_flops = p * flops_one
        w.smem_bytes = w.smem_wavefront_bytes = p * (loads_one + staged_one)
        w.hbm_read = (a_hbm + b_hbm) * share + g.extra_read / blocks
        w.hbm_write = out_hbm * share
        # the SM's loads from L2 (every product's own operands, shared ones included)
        # and its stores bound for HBM (a kept output's are left in L2)
        w.l2_bytes = p * (m * k * ea + k * n * eb) + g.extra_read / blocks + w.hbm_write
        return w

    classes = [(full, work(per_block))] if full else []
    if rest:
        classes.append((1, work(rest)))
    kind = ("s884gemm" if tensor else
            {"fp64": "dgemm", "fp16": "hgemm"}.get(compute, "sgemm"))
    smem = int(per_block * staged_one)
    return Kernel(f"{g.name}:batched_{kind}", f"{m}x{n}x{k}x{per_block}", threads, REGS, smem,
                  classes, dtype=compute, tensor=tensor,
                  notes={"m": m, "n": n, "k": k, "batch": g.batch, "split_k": 1, "op": g.op,
                         "variant": "batched-small", "per_block": per_block},
                  # every load of the block issued before its one barrier
                  inflight_bytes_per_thread=max(per_block * (m * k * ea + k * n * eb) / threads,
                                                4.0),
                  loop_efficiency=eff)
