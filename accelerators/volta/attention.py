"""Attention on Volta: three strategies, as kernels.

``standard``
    What eager PyTorch runs: a batched GEMM ``S = Q·Kᵀ`` that writes the scores
    to HBM, a softmax kernel over them (the causal mask applied there), and a
    batched GEMM ``O = P·V``. Scores cost ``2·b·h·q·kv`` bytes of HBM each way.
``flash``
    A fused kernel as xformers' memory-efficient attention runs on sm_70 (the
    CUTLASS kernel PyTorch also ships; FlashAttention itself needs sm_80): one
    block per ``block_q`` queries of a head, looping over ``block_kv`` keys;
    ``kNumWarpsPerBlock = block_q·block_kv / 1024`` and at least
    ``12 / warps`` blocks per SM (its launch bounds). Default tiles: 64x64 for
    head_dim <= 64, else 32x128 with the output accumulated through an fp32
    buffer in global memory (its ``_gmem`` variant). Operands go through shared
    memory with plain loads (Volta has no ``ldmatrix``) in a row-major layout
    padded by 8 halves: the m8n8k4 quad pairs then load with 2-way bank
    conflicts (:mod:`.smem`; ``flash_smem_layout`` in the preset).
``fastattention``
    FastAttention's Volta kernel: the same flow with the operand layout
    redesigned for m8n8k4 (conflict-free loads), the output kept in registers,
    and for head_dim > 64 a larger query tile (128x64, 8 warps), so K and V are
    re-read from L2 a quarter as often per query (tile sizes: M).

On sm_70 the m8n8k4 fragments are loaded right before the MMAs that use them,
so a warp's own shared-memory loads and MMAs serialize and only the other
resident warps hide them (``serial_operands``): the bank conflicts of ``flash``
cost time whenever shared memory is not already hidden.

Per kv-block iteration a block does ``2·bq·bkv·(d + dv)`` FLOP on the tensor
cores, about 8 CUDA-core FLOP and one exp (SFU) per score for the online
softmax, stores K, V and P tiles to shared memory and loads the m8n8k4
fragments of Q, K, P and V (each warp a 32x32 tile of S, and its share of O),
and reads the K and V tiles from L2. A causal block skips the key blocks
wholly above the diagonal (bottom-right aligned when kv_len > q_len), so blocks
differ in length; they are scheduled greedily, as the hardware does.

HBM: the blocks of one head that run in the same wave share its K and V
through L2 (a key/value head is read once per wave that holds its query
blocks, grouped-query heads together); Q is read and O written once.

With few query blocks (decoding), the key range is split across blocks
(split-KV) until the grid fills the SMs, and a small kernel combines the
partial results.

With ``host_kv_fraction`` > 0 (CPU-GPU cooperation), that fraction of the KV
cache lives in host memory: the entries already cached stream in over PCIe and
the new entries of this call stream out, overlapped with the kernel.
"""

from __future__ import annotations

from .gemm import ELEM, Gemm
from .gemm import kernels as gemm_kernels
from .gpu import Gpu, Kernel, Work, cdiv
from .memops import _stream
from .smem import conflict_factor

STRATEGIES = ("standard", "flash", "fastattention")
ALU_FLOPS_PER_SCORE = 8  # scale, running max, subtract, rescale, sum, convert (online softmax)


def default_tiles(strategy: str, d: int) -> tuple[int, int]:
    if strategy == "fastattention":
        return (64, 64) if d <= 64 else (128, 64)
    return (64, 64) if d <= 64 else (32, 128)


def choose(strategy: str, q_len: int, kv_len: int) -> str:
    """``auto``: the fused FastAttention kernel (it never loses on Volta)."""
    if strategy in STRATEGIES:
        return strategy
    return "fastattention"


def attrs(op, graph):
    a = op.attrs
    d = a["head_dim"]
    return dict(b=a["batch"], h=a["heads"], hk=a["kv_heads"], d=d, dv=a.get("v_head_dim", d),
                q=a["q_len"], kv=a["kv_len"], causal=bool(a["causal"]),
                dtype=graph.tensors[op.inputs[0]].dtype)


def host_bytes(p: dict, fraction: float) -> float:
    """PCIe bytes of the host-resident part of this call's KV cache."""
    if fraction <= 0:
        return 0.0
    e = ELEM.get(p["dtype"], 2)
    per_token = p["b"] * p["hk"] * (p["d"] + p["dv"]) * e
    old = max(0, p["kv"] - p["q"])
    new = min(p["q"], p["kv"])
    return fraction * per_token * (old + new)


def lower(gpu: Gpu, op, graph, strategy: str, block_q: int, block_kv: int,
          host_fraction: float) -> list[Kernel]:
    p = attrs(op, graph)
    name = op.name or "attention"
    if strategy == "standard":
        ks = standard(gpu, p, name)
    else:
        ks = fused(gpu, p, name, strategy, block_q, block_kv)
    pcie = host_bytes(p, host_fraction)
    if pcie:
        ks[0].pcie_bytes += pcie
    return ks


def standard(gpu: Gpu, p: dict, name: str) -> list[Kernel]:
    bh = p["b"] * p["h"]
    dt = p["dtype"]
    s = gemm_kernels(gpu, Gemm(bh, p["q"], p["kv"], p["d"], dt, dt, name=f"{name}.QK"))
    e = ELEM.get(dt, 2)
    rows, cols = bh * p["q"], p["kv"]
    nbytes = rows * cols * e
    if cols <= 1024:
        blocks, threads, tile = cdiv(rows, 4), 128, "4 rows x 1 warp"
    else:
        threads = 1024 if cols >= 8192 else 256
        blocks, tile = rows, f"1 row x {threads}"
    sm = [_stream(f"{name}.softmax", tile, blocks, threads, 5.0 * rows * cols, rows * cols,
                  nbytes, nbytes, dt, smem=1024)]
    o = gemm_kernels(gpu, Gemm(bh, p["q"], p["dv"], p["kv"], dt, dt, name=f"{name}.PV"))
    return s + sm + o


def fused(gpu: Gpu, p: dict, name: str, strategy: str, block_q: int, block_kv: int
          ) -> list[Kernel]:
    spec = gpu.spec
    b, h, hk, d, dv, q, kv = p["b"], p["h"], p["hk"], p["d"], p["dv"], p["q"], p["kv"]
    e = ELEM.get(p["dtype"], 2)
    bq0, bkv0 = default_tiles(strategy, d)
    # a library shrinks the query tile to the queries there are (decode: one), in
    # steps of the m8n8k4 tile's 8 rows, rather than padding to the default
    bq = block_q or min(bq0, max(8, cdiv(q, 8) * 8))
    bkv = block_kv or bkv0
    warps = max(1, (bq * bkv) // 1024)
    threads = 32 * warps
    min_blocks = max(1, 12 // warps)  # xformers' launch bounds on sm_70
    regs = min(255, (spec.registers_per_sm // (min_blocks * threads)) // 8 * 8)
    gmem_acc = strategy == "flash" and dv > bkv0 and not block_kv and d > 64
    layout = spec.flash_smem_layout if strategy == "flash" else "permuted"
    # shared memory: P (fp16) plus a two-stage main loop over 32-wide slices of the
    # reduction dim (Q and K slices for S = QKᵀ, V slices for O += PV), as CUTLASS does
    smem = bq * bkv * e + 2 * max((bq + bkv) * 32, 32 * dv) * e + 2 * bq * 4
    n_q = cdiv(q, bq)
    n_kv_all = cdiv(kv, bkv)
    offset = kv - q  # causal, bottom-right aligned
    # split-KV when the query blocks cannot fill the GPU
    occ = max(1, gpu.occupancy(threads, regs, smem).blocks_per_sm)
    base_blocks = b * h * n_q
    split = 1
    while base_blocks * split < spec.sms and n_kv_all >= 2 * split * 2:
        split *= 2
    # per-iteration work of one block
    wm = min(bq, 32)
    wn = max(1, (bq * dv) // (warps * wm))
    f_qk = conflict_factor(layout, d)
    f_pv = conflict_factor(layout, max(bkv, dv))
    loads_qk = warps * (32 + 32) * e * d
    loads_pv = warps * (wm + wn) * e * bkv
    stores = (bkv * d + bkv * dv + bq * bkv) * e
    per_iter = Work(
        tensor_flops=2.0 * bq * bkv * (d + dv),
        cuda_flops=ALU_FLOPS_PER_SCORE * bq * bkv + 2.0 * bq * dv,
        sfu_ops=float(bq * bkv),
        smem_bytes=loads_qk + loads_pv + stores,
        smem_wavefront_bytes=loads_qk * f_qk + loads_pv * f_pv + stores,
        l2_bytes=bkv * (d + dv) * e + (2 * bq * dv * 4 if gmem_acc else 0))
    # iterations per query block (causal blocks skip what lies above the diagonal)
    iters = []
    for i in range(n_q):
        if p["causal"]:
            last_key = min(kv, offset + min(q, (i + 1) * bq))
            n = max(1, cdiv(max(last_key, 1), bkv))
        else:
            n = n_kv_all
        iters.append(max(1, cdiv(n, split)))
    # HBM: K/V of a kv head read once per wave holding its query blocks
    wave = spec.sms * occ
    group = max(1, h // hk)
    kv_head_bytes = kv * (d + dv) * e
    reads_per_kvhead = max(1, cdiv(n_q * group * split, wave))
    kv_hbm = b * hk * kv_head_bytes * min(reads_per_kvhead, max(1, n_q * group))
    q_bytes = b * h * q * d * e
    o_bytes = b * h * q * dv * e
    total_iters = b * h * split * sum(iters)
    out_part = 4 if split > 1 else e
    works = []
    for n in (iters if p["causal"] else iters[:1]):
        w = per_iter.scaled(n)
        w.hbm_read = kv_hbm * n / total_iters + q_bytes / (b * h * n_q * split)
        w.hbm_write = o_bytes * (out_part / e) / (b * h * n_q)
        w.l2_bytes += bq * d * e + bq * dv * out_part
        works.append(w)
    heads = b * h * split
    if not p["causal"]:
        classes = [(heads * n_q, works[0])]
    elif heads * n_q <= 50_000:  # launch order: query blocks of a head, head after head
        classes = [(1, w) for _ in range(heads) for w in works]
    else:
        classes = [(heads, w) for w in works]
    label = "fastattention" if strategy == "fastattention" else "xformers-fmha"
    k = Kernel(f"{name}:{label}", f"{bq}x{bkv}", threads, regs, smem, classes,
               dtype=p["dtype"], tensor=gpu.has_tensor(p["dtype"]), serial_operands=True,
               notes={"strategy": strategy, "layout": layout, "bank_conflicts_qk": f_qk,
                      "bank_conflicts_pv": f_pv, "split_kv": split,
                      "kv_reads_per_head": reads_per_kvhead})
    if not k.tensor:
        for _, w in k.blocks:
            w.cuda_flops += w.tensor_flops
            w.tensor_flops = 0.0
    ks = [k]
    if split > 1:
        elems = b * h * q * dv
        ks.append(_stream(f"{name}:combine", "256x8", cdiv(elems, 2048), 256,
                          3.0 * split * elems, split * b * h * q,
                          split * elems * 4, elems * e, "fp32"))
    return ks
