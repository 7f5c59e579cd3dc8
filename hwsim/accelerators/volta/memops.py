"""Memory-bound kernels: elementwise, softmax, norms, reductions, copies, top-k.

Each is a grid of thread blocks that stream their share of the op's bytes from
HBM and back at the achievable bandwidth (the ``hbm`` pool of the engine), with
their arithmetic on the CUDA cores and transcendentals on the special-function
units. Block shapes follow common PyTorch kernels: a grid-stride elementwise
kernel of 256 threads with 8 elements each (128-bit accesses); a row-wise
softmax or norm with one block per row (one warp per row for rows of up to
1,024 elements, four rows a block); a radix-select top-k with one block per row
that reads its row once and makes two 8-bit passes over it in shared memory.
Bytes are the op's compulsory traffic from the IR (each kernel starts with a
cold L2), except where the run carries tensors between ops in the L2
(:mod:`hwsim.onchip`): an input the plan puts on chip is read from the L2 and
not from HBM (an L2 hit), and an output kept there is written to the L2 only.
"""

from __future__ import annotations

from hwsim.ir.kinds import FN_FLOPS, flops, read_bytes, write_bytes
from hwsim.onchip import NONE, Carry, kept_write_bytes, onchip_read_bytes

from .gpu import Kernel, Work, cdiv

TRANSCENDENTAL = {"exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "sin", "cos",
                  "reciprocal", "pow", "div", "gelu", "gelu_tanh", "silu", "swiglu"}
ELEMS_PER_BLOCK = 256 * 8
# the kinds whose kernels read each input whole, so one can come from the L2 instead
# (hwsim.onchip); gathers read rows of their table, a top-k its scores three times
CARRY_KINDS = ("softmax", "layernorm", "rmsnorm", "elementwise", "rope")


def compute_dtype(dtype: str) -> str:
    return dtype if dtype in ("fp16", "fp32", "fp64") else "fp32"


def _stream(name: str, tile: str, blocks: int, threads: int, total_flops: float,
            sfu: float, rd: float, wr: float, dtype: str, smem_bytes: float = 0.0,
            smem: int = 0, regs: int = 32, onchip: tuple[float, float] = (0.0, 0.0)) -> Kernel:
    """A streaming kernel reading ``rd`` and writing ``wr`` bytes through the L2, of
    which ``onchip`` = (read, written) bytes stay in the L2 and never reach HBM.

    The L2 traffic is the loads (hits and misses alike) and the stores bound for HBM:
    the SM model counts the loads as that traffic less the HBM writes
    (:meth:`.gpu.Gpu.memory_time`), so an output kept in the L2 is left out of it
    (its stores are posted; only their L2 bandwidth and energy go uncounted)."""
    blocks = max(1, int(blocks))
    w = Work(cuda_flops=total_flops / blocks, sfu_ops=sfu / blocks,
             hbm_read=(rd - onchip[0]) / blocks, hbm_write=(wr - onchip[1]) / blocks,
             l2_bytes=(rd + wr - onchip[1]) / blocks,
             smem_bytes=smem_bytes / blocks, smem_wavefront_bytes=smem_bytes / blocks)
    # a thread's loads are independent (unrolled elements, a row's slice): all in flight
    # at once, up to eight 128-bit loads (the unroll of PyTorch's vectorized kernels)
    per_thread = rd / blocks / max(1, threads)
    return Kernel(name, tile, threads, regs, smem, [(blocks, w)], dtype=compute_dtype(dtype),
                  tensor=False, inflight_bytes_per_thread=max(4.0, min(128.0, per_thread)))


def lower(op, graph, carry: Carry = NONE) -> list[Kernel]:
    """The kernel of a memory-bound op; ``carry``: inputs it reads from the L2 and
    outputs it leaves there (only the kinds of :data:`CARRY_KINDS`)."""
    a = op.attrs
    kind = op.kind
    out = graph.tensors[op.outputs[0]] if op.outputs else None
    dtype = out.dtype if out is not None else "fp32"
    rd, wr = read_bytes(op, graph), write_bytes(op, graph)
    if carry and kind not in CARRY_KINDS:
        raise ValueError(f"a {kind} kernel does not take its inputs from the L2")
    # (no carry: nothing held, the sums of nothing)
    held = (float(onchip_read_bytes(op, graph, carry)),
            float(kept_write_bytes(op, graph, carry))) if carry else (0.0, 0.0)
    name = op.name or kind
    n_flops = flops(op)
    if kind == "elementwise":
        n = a["elements"]
        fn = a["fn"]
        sfu = n if fn in TRANSCENDENTAL else 0.0
        return [_stream(f"{name}:{fn}", "256x8", cdiv(max(n, 1), ELEMS_PER_BLOCK), 256,
                        n * FN_FLOPS.get(fn, 1), sfu, rd, wr, dtype, onchip=held)]
    if kind in ("rope", "gather", "concat", "kv_write", "embedding"):
        n = {"rope": a.get("elements"), "gather": a.get("elements"),
             "concat": a.get("elements"), "kv_write": a.get("elements")}.get(kind)
        if kind == "embedding":
            n = a["tokens"] * a["dim"]
        sfu = 0.0
        return [_stream(f"{name}:{kind}", "256x8", cdiv(max(n, 1), ELEMS_PER_BLOCK), 256,
                        n_flops, sfu, rd, wr, dtype, onchip=held)]
    if kind in ("softmax", "layernorm", "rmsnorm"):
        rows, cols = a["rows"], a["cols"]
        if cols <= 1024:
            blocks, threads, tile = cdiv(rows, 4), 128, "4 rows x 1 warp"
        else:
            threads = 1024 if cols >= 8192 else 256
            blocks, tile = rows, f"1 row x {threads}"
        sfu = rows * cols if kind == "softmax" else rows
        return [_stream(f"{name}:{kind}", tile, blocks, threads, n_flops, sfu, rd, wr,
                        dtype, smem=1024, onchip=held)]
    if kind == "reduce":
        n = a["elements"]
        return [_stream(f"{name}:reduce", "256x8", cdiv(max(n, 1), ELEMS_PER_BLOCK), 256,
                        n_flops, 0.0, rd, wr, dtype)]
    if kind == "topk":
        rows, n = a["rows"], a["n"]
        src = graph.tensors[op.inputs[0]]
        e = src.bytes / max(1, src.numel)
        # radix select: histogram passes over the row in shared memory, then a scan
        smem_bytes = 3 * rows * n * e
        return [_stream(f"{name}:topk", "1 row x 256", rows, 256, 4.0 * rows * n, 0.0, rd, wr,
                        "fp32", smem_bytes=smem_bytes, smem=min(int(n * e), 48 * 1024) + 1024)]
    raise KeyError(kind)
