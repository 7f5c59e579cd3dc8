"""The Volta target: GEMM efficiency, HBM bandwidth, occupancy, waves, bank conflicts,
capacity and offload, energy, and the two fidelities against each other."""

from __future__ import annotations

import dataclasses
import math

import pytest

import hwsim
from hwsim.accelerators.volta import TARGET
from hwsim.accelerators.volta.gpu import Builder, Gpu, Kernel, Work
from hwsim.accelerators.volta.smem import conflict_factor
from hwsim.errors import InputError, UnsupportedOpError
from hwsim.onchip import NONE
from hwsim.targets import resolve
from hwsim.workload import build_graph, workload_from_dict


def spec(**sets):
    return resolve("volta", sets).spec


def workload(ops, **extra):
    return workload_from_dict({"name": "t", "ops": ops, **extra}, "<test>")


def sim(ops, sets=(), fidelity="event", **extra):
    return hwsim.simulate(workload(ops, **extra), "volta", sets=list(sets), fidelity=fidelity)


def kernels(ops, sets=None, **extra):
    wl = workload(ops, **extra)
    g = build_graph(wl)
    s = resolve("volta", sets or {}).spec
    return [k for op in g.ops for k in TARGET.kernels(op, g, s, wl.tiling)]


def rate(ops, **kw):
    t = sim(ops, **kw).totals
    return t["flops"] / t["latency_s"]


def matmul(m, n, k, dtype="fp16"):
    return [{"kind": "matmul", "m": m, "n": n, "k": k, "dtype": dtype}]


ATTN = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 4096, "kv_len": 4096,
        "causal": True}


def test_registered_with_two_presets():
    assert resolve("volta").preset == "volta-v100-sxm2"
    assert resolve("volta-v100-pcie").spec.dram_bytes == 16 * 2**30
    assert "125 TFLOP/s" in TARGET.headline(spec())


def test_large_fp16_gemm_near_peak_and_small_and_skinny_fall_off():
    big = rate(matmul(8192, 8192, 8192))
    assert 0.7 * 125e12 < big < 0.85 * 125e12  # cuBLAS measures 97 TFLOP/s (78 %)
    small = rate(matmul(1024, 1024, 1024))
    assert small < 0.75 * big  # under one wave of tiles plus a launch
    skinny = rate(matmul(16, 4096, 4096))
    assert skinny < 0.15 * big  # bound by reading the 32 MiB weight
    assert rate(matmul(4096, 4096, 4096, "fp32")) == pytest.approx(14.3e12, rel=0.05)


def test_gemm_kernel_report_names_tile_occupancy_waves_and_bound():
    (k,) = kernels(matmul(8192, 8192, 8192))
    assert k["block_tile"] == "256x128x32"
    assert k["occupancy"] == 1 and k["limiter"] == "registers"
    assert k["waves"] == pytest.approx(2048 / 80)
    assert k["bound"] == "compute"


def test_split_k_helps_a_deep_narrow_gemm():
    ks = kernels(matmul(128, 128, 65536))
    assert ks[0]["notes"]["split_k"] > 1
    assert ks[1]["name"].endswith("splitKreduce")


def test_streaming_copy_reaches_the_achievable_hbm_bandwidth():
    t = sim([{"kind": "elementwise", "fn": "copy", "elements": 2**28}]).totals
    bw = (t["dram_read_bytes"] + t["dram_write_bytes"]) / t["latency_s"]
    assert bw == pytest.approx(750e9, rel=0.03)
    assert bw < 900e9


def test_eighty_one_blocks_on_eighty_sms_take_two_waves():
    gpu = Gpu(spec())
    w = Work(tensor_flops=1.0e9)

    def latency(blocks):
        bld = Builder(gpu, lambda k, w: {}, "t")
        bld.kernel(Kernel("k", "t", 256, 232, 49152, [(blocks, w)]))
        from hwsim.engine import run_events
        return run_events(bld.tasks, TARGET.pools(spec())).latency_s - spec().kernel_launch_s

    one, two = latency(80), latency(81)
    assert two == pytest.approx(2 * one, rel=0.01)
    assert latency(160) == pytest.approx(two, rel=0.01)


def test_occupancy_is_limited_by_shared_memory_or_registers():
    gpu = Gpu(spec())
    assert gpu.occupancy(128, 32, 48 * 1024).limiter == "shared memory"
    assert gpu.occupancy(128, 32, 48 * 1024).blocks_per_sm == 2
    occ = gpu.occupancy(256, 128, 1024)
    assert (occ.blocks_per_sm, occ.limiter) == (2, "registers")
    assert gpu.occupancy(1024, 32, 0).blocks_per_sm == 2  # threads


def test_bank_conflicts_from_addresses():
    assert conflict_factor("row", 128) == 8.0
    assert conflict_factor("padded", 128) == 2.0
    assert conflict_factor("permuted", 128) == 1.0


def test_flash_layouts_against_fastattention_at_the_same_tiles():
    """At FastAttention's tiles the xformers kernel is still slower: its warps split the
    key block (P through shared memory, Q loaded again for every key block, one 32-wide
    slice in flight, two prologues per key block on its own path at one block per SM).
    Its own layouts are CUTLASS's conflict-free Volta ones; the 16-byte padding (2-way
    conflicts) and unswizzled rows (8-way) slow it further."""
    tiling = {"attention": "flash", "block_q": 128, "block_kv": 64}
    same = {"attention": "fastattention", "block_q": 128, "block_kv": 64}
    fa = sim([ATTN], tiling=same).totals["latency_s"]
    latency = {layout: sim([ATTN], [f"target.flash_smem_layout={layout}"],
                           tiling=tiling).totals["latency_s"]
               for layout in ("permuted", "padded", "row")}
    assert fa < latency["permuted"] < latency["padded"] < latency["row"]
    assert latency["row"] > 2 * latency["permuted"]
    (k,) = kernels([ATTN], tiling={"attention": "flash"})
    assert k["notes"]["bank_conflicts_qk"] == 1.0


def test_default_flash_tile_streams_four_times_the_l2_bytes_of_fastattention():
    """xformers' 32x128 tile (head_dim 128) streams K and V through L2 once per 32 query
    rows, FastAttention's 128x64 once per 128, and xformers loads its Q tile again with
    every key block (8 KiB on 64 KiB of K and V): at 4K tokens the flash kernel is bound
    by L2 (its aggregate bandwidth, and the few bytes a block keeps in flight),
    FastAttention by its SM pipes."""
    wl = workload([ATTN])
    g = build_graph(wl)
    s = spec()

    def l2_bytes(strategy):
        from hwsim.workload.schema import Tiling
        ks = TARGET.kernels_of(g.ops[0], g, s, Tiling(attention=strategy))
        return sum(k.total().l2_bytes for k in ks)

    assert 4.0 * l2_bytes("fastattention") < l2_bytes("flash") < 4.5 * l2_bytes("fastattention")
    (fl,) = kernels([ATTN], tiling={"attention": "flash"})
    (fa,) = kernels([ATTN], tiling={"attention": "fastattention"})
    assert fl["bound"] == "onchip" and fa["bound"] == "compute"
    # the L2 floor: 5.0 GB of K/V/Q tiles at the achievable 2155 GB/s (Jia et al.)
    flash = sim([ATTN], tiling={"attention": "flash"}).totals["latency_s"]
    assert flash >= l2_bytes("flash") / s.l2_bw_bytes_per_s


def _one_key_block(strategy, q_len, kv_len):
    """The fused kernel of one (non-causal) tile of one key block."""
    from hwsim.workload.schema import Tiling
    op = dict(ATTN, heads=1, q_len=q_len, kv_len=kv_len, causal=False)
    wl = workload([op])
    g = build_graph(wl)
    (k,) = TARGET.kernels_of(g.ops[0], g, spec(), Tiling(attention=strategy))
    assert k.grid == 1
    return k


def test_attention_fragment_loads_counted_as_the_gemm_counts_them():
    """Shared-memory bytes of one key block, head_dim 128, counted from the kernels'
    structure: every m8n8k4 quad pair loads its own copy of the rows it shares (a warp
    loads twice the operand bytes it uses, as .gemm counts a GEMM's), 32 B per thread
    and k4 step on a 32x32 warp tile.
    xformers 32x128, 4 warps: Q·Kᵀ and P·V 4 x 32 x 32 B x 32 k-steps each, K, V, P and
    the reloaded Q stored. FastAttention 128x64, 8 warps of 16 query rows: Q·Kᵀ 40 B
    (16 rows of Q, 64 keys) a thread and k-step over 32 steps, P·V only V's 64 B over
    16 steps (P stays in registers), K and V stored."""
    xf = _one_key_block("flash", 32, 128).total()
    qk = pv = 4 * 32 * 32 * 32
    assert xf.smem_bytes == qk + pv + 128 * 128 * 2 * 2 + 32 * 128 * 2 + 32 * 128 * 2
    # P's 4,096 scalar stores take a wavefront per warp instruction (4 B an element)
    assert xf.smem_wavefront_bytes == xf.smem_bytes - 32 * 128 * 2 + 32 * 128 * 4
    fa = _one_key_block("fastattention", 128, 64).total()
    assert fa.smem_bytes == 8 * 32 * 40 * 32 + 8 * 32 * 64 * 16 + 64 * 128 * 2 * 2
    assert fa.smem_wavefront_bytes == fa.smem_bytes


def test_flash_prologues_stay_on_a_lone_blocks_path():
    """xformers waits out two main-loop prologues per key block (Q·Kᵀ's and P·V's first
    slice, no V preload below sm_80): a block alone on its SM pays two loaded L2 round
    trips per key block; with other blocks resident they fill the wait (a full group
    of the Llama case is bound by its pipes and loads, not by the prologues)."""
    import dataclasses

    from hwsim.accelerators.volta.gpu import Gpu

    gpu = Gpu(spec())
    (k,) = [k for k in TARGET.kernels_of(*_attn_op(), spec(), _tiling("flash"))]
    count, w = max(k.blocks, key=lambda cw: cw[1].tensor_flops)
    iters = w.tensor_flops / (2 * 32 * 128 * (128 + 128))
    assert iters == 32  # the last query tile of a 4K causal attention: every key block
    still = dataclasses.replace(k, exposed_trips_per_flop=0.0)
    l2_s = gpu.loaded_latency(k, 1)[1]
    alone = gpu.group_time(k, w, 1)[0] - gpu.group_time(still, w, 1)[0]
    assert alone == pytest.approx(2 * iters * l2_s, rel=1e-9)
    three = w.scaled(3)
    assert gpu.group_time(k, three, 3, w)[0] == gpu.group_time(still, three, 3, w)[0]


def _attn_op():
    wl = workload([ATTN])
    g = build_graph(wl)
    return g.ops[0], g


def _tiling(strategy):
    from hwsim.workload.schema import Tiling
    return Tiling(attention=strategy)


def test_standard_attention_materializes_scores():
    std = sim([ATTN], tiling={"attention": "standard"}).totals
    fa = sim([ATTN], tiling={"attention": "fastattention"}).totals
    scores = 32 * 4096 * 4096 * 2
    assert std["dram_write_bytes"] > 2 * scores
    assert fa["dram_write_bytes"] == pytest.approx(32 * 4096 * 128 * 2)  # O only
    assert std["latency_s"] > fa["latency_s"]


def test_capacity_error_says_by_how_much():
    ops = [dict(ATTN, q_len=65536, kv_len=65536)]
    with pytest.raises(InputError, match=r"does not fit in 32\.00 GiB of HBM.* GiB over"):
        sim(ops, tiling={"attention": "standard"})
    sim(ops, tiling={"attention": "fastattention"})  # no score matrix: fits


def test_256k_on_8_gpus_fits_only_with_offload():
    """16 GB V100s (the validation case's assumption: logits for the last position
    only, 32 GB V100s hold the 256K prompt without cooperation)."""
    wl = workload_from_dict({"name": "t", "model": "llama-2-7b", "seq_len": 262144,
                             "devices": 8, "tiling": {"attention": "fastattention"}}, "<t>")
    pytest.importorskip("gzip")
    from hwsim import zoo
    if zoo.shipped_path("llama-2-7b", "prefill") is None:
        pytest.skip("no shipped llama-2-7b template")
    with pytest.raises(InputError, match="GiB over"):
        hwsim.simulate(wl, "volta", sets=["target.dram_bytes=16 GiB"], fidelity="analytical")
    r = hwsim.simulate(wl, "volta", sets=["target.dram_bytes=16 GiB",
                                          "target.host_kv_fraction=0.5"],
                       fidelity="analytical")
    assert r.totals["energy_breakdown_j"]["interconnect"] > 0  # PCIe and NVLink


def test_host_kv_streams_over_pcie_overlapped():
    dec = {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 1, "kv_len": 32768,
           "causal": True}
    base = sim([dec]).totals["latency_s"]
    off = sim([dec], ["target.host_kv_fraction=0.5"]).totals["latency_s"]
    pcie_s = 0.5 * 32768 * 32 * 256 * 2 / 12e9
    assert off == pytest.approx(pcie_s + spec().kernel_launch_s, rel=0.1)  # PCIe-bound
    assert off > base


def test_energy_sums_and_a_long_gemm_draws_near_board_power():
    t = sim(matmul(8192, 8192, 8192)).totals
    assert sum(t["energy_breakdown_j"].values()) == pytest.approx(t["energy_j"])
    power = t["energy_j"] / t["latency_s"]
    assert 240 < power <= 300
    idle = sim([{"kind": "elementwise", "fn": "add", "elements": 64}]).totals
    assert idle["energy_j"] / idle["latency_s"] == pytest.approx(40, rel=0.05)


@pytest.mark.parametrize("ops", [matmul(4096, 4096, 4096), [ATTN],
                                 [{"kind": "elementwise", "fn": "copy", "elements": 2**26}],
                                 [{"kind": "softmax", "rows": 4096, "cols": 4096}]])
def test_event_and_analytical_agree(ops):
    ev = sim(ops).totals["latency_s"]
    an = sim(ops, fidelity="analytical").totals["latency_s"]
    assert an <= ev * (1 + 1e-9)
    assert ev == pytest.approx(an, rel=0.08)


def test_view_is_free_and_unknown_kinds_are_errors():
    from hwsim.ir import Graph

    g = Graph({"name": "t"})
    a = g.add_tensor([4], "fp16", "input")
    b = g.add_tensor([4], "fp16")
    op = g.add_op("view", [a], [b], {})
    assert TARGET.lower(op, g, spec()) == []
    bad = dataclasses.replace(op, kind="fft")
    with pytest.raises(UnsupportedOpError, match="fft"):
        TARGET.lower(bad, g, spec())


def test_allreduce_is_a_ring_over_nvlink():
    from hwsim.ir import Graph

    g = Graph({"name": "t"})
    a = g.add_tensor([4096, 4096], "fp16")
    b = g.add_tensor([4096, 4096], "fp16")
    op = g.add_op("allreduce", [a], [b], {"elements": 4096 * 4096, "devices": 8})
    (task,) = TARGET.lower(op, g, spec())
    s = spec()
    sent = 2 * 7 * 4096 * 4096 * 2 / 8
    assert task.bound == "interconnect" and task.unit == "nvlink"
    assert task.duration_s == pytest.approx(sent / s.link_bw_bytes_per_s
                                            + 14 * s.link_latency_s + s.kernel_launch_s)


def test_validation_cases_pass():
    from hwsim.validate import run_cases

    results = run_cases(target="volta", path=str(
        __import__("pathlib").Path(__file__).resolve().parents[1]
        / "hwsim/validate/cases/volta.yaml"))
    assert len(results) >= 10
    assert [r.case.name for r in results if not r.ok and r.case.name not in KNOWN_MISSES] == []


# Published claims the model does not reproduce, reported to whoever owns the case file
# (never tuned toward). None at present: FastAttention's 1.43x over xformers, a known miss
# at 0.98x until issue 13, gives 1.40x since the two kernels' structures are modelled
# (xformers' split-K warps, P through shared memory, Q reloaded per key block, one slice
# in flight; FastAttention's split-Q warps with P in registers; both software-pipelined,
# their quad pairs' duplicate fragment loads counted): tested above
# (test_attention_fragment_loads_counted_as_the_gemm_counts_them,
# test_default_flash_tile_streams_four_times_the_l2_bytes_of_fastattention).
KNOWN_MISSES: set[str] = set()


def test_chrome_trace_labels_carry_occupancy_and_waves(tmp_path):
    from hwsim.report.chrome import chrome_events

    events = chrome_events(sim(matmul(4096, 4096, 4096)))
    names = [e["name"] for e in events if e.get("ph") == "X"]
    assert any("occ=" in n and "waves=" in n for n in names)


def test_work_scaled_and_add_cover_every_field():
    """Work.scaled and Work.add name the fields one by one (fast); a field added later
    must be added there too."""
    from dataclasses import astuple

    from hwsim.accelerators.volta.gpu import Work

    w = Work(*[float(i + 1) for i in range(len(astuple(Work())))])
    assert astuple(w.scaled(2.0)) == tuple(2.0 * x for x in astuple(w))
    acc = Work()
    acc.add(w)
    acc.add(w)
    assert astuple(acc) == astuple(w.scaled(2.0))


@pytest.mark.parametrize("workload", ["workloads/bert-base.yaml",
                                      "workloads/llama2-7b-decode.yaml",
                                      "workloads/attention-kernels.yaml"])
def test_sms_in_groups_give_what_one_lane_per_sm_gives(workload, monkeypatch):
    """SMs with the same runs emitted as one group (Task.copies; their pieces on the
    hbm and l2 units as serial copies) against one lane per SM: the same bytes, and
    the same latency in both schedules to float rounding (measured: 1e-14)."""
    from hwsim.accelerators.volta import TARGET as VOLTA
    from hwsim.engine import run_events, summarize
    from hwsim.simulate import prepare
    from hwsim.targets import resolve
    from hwsim.workload import load_workload

    wl = load_workload(workload)
    g, _ = prepare(wl)
    sp = resolve("volta").spec
    pools = VOLTA.pools(sp)
    fewer = 0
    for op in g.ops:
        if op.layer not in (None, 0) or op.kind in ("view", "allreduce"):
            continue
        monkeypatch.setattr(VOLTA, "grouping", True)
        grouped = VOLTA.lower(op, g, sp, wl.tiling)
        monkeypatch.setattr(VOLTA, "grouping", False)
        each = VOLTA.lower(op, g, sp, wl.tiling)
        a, b = summarize(grouped, pools), summarize(each, pools)
        assert a.bytes == b.bytes, op.name
        assert a.analytical_latency_s == pytest.approx(b.analytical_latency_s, rel=1e-9)
        assert run_events(grouped, pools).latency_s == pytest.approx(
            run_events(each, pools).latency_s, rel=1e-9), op.name
        fewer += len(grouped) < len(each) / 4
    assert fewer >= 3


def test_block_shares_at_once_equal_one_by_one():
    """Gpu.block_shares and Gpu.group_times (numpy over a causal attention's block classes
    or SMs) give the floats and bounds that block_share and group_time give one by one."""
    import random

    gpu = Gpu(resolve("volta").spec)
    rng = random.Random(3)
    for tensor, serial in ((True, False), (True, True), (False, False)):
        k = Kernel("k", "64x64", 128, 64, 16384, [(1, Work())], tensor=tensor,
                   serial_operands=serial, exposed_trips_per_flop=1e-6 * serial)
        works = []
        for _ in range(400):
            pick = rng.random
            works.append(Work(pick() * 1e7 * (rng.random() < .8), pick() * 1e5, pick() * 1e4,
                              pick() * 1e5, pick() * 1e5 * (rng.random() < .9),
                              pick() * 1e6 * (rng.random() < .8),
                              pick() * 1e5 * (rng.random() < .5), pick() * 1e4,
                              pick() * 1e5 * (rng.random() < .5)))
        works.append(Work())
        k.blocks = [(1, w) for w in works]
        for occ in (1, 2, 3):
            assert gpu.block_shares(k, works, occ) == [gpu.block_share(k, w, occ) for w in works]
            assert gpu.group_times(k, works, occ) == [gpu.group_time(k, w, occ)[0]
                                                      for w in works]


def test_pipes_on_floats_equal_the_one_formula():
    """Gpu._pipes_of (the pipe terms on plain floats, the kernel's constants kept) gives
    the seconds and bound of Gpu._terms, the formula the numpy paths share, on random
    works: tensor and CUDA-core kernels, serial operands, exposed prologues, 1 to 4
    resident blocks, zeros (no loads, no DRAM, no L2) included; asked again, the kept
    constants give the same."""
    import random

    from hwsim.accelerators.volta.gpu import _FLOATS, _fields, _pipes_bound

    gpu = Gpu(resolve("volta").spec)
    rng = random.Random(8)
    for tensor, serial, dtype in ((True, False, "fp16"), (True, True, "fp16"),
                                  (False, False, "fp32"), (False, True, "int8")):
        k = Kernel("k", "64x64", 128 * rng.randint(1, 2), 64, 16384, [(333, Work())],
                   dtype=dtype, tensor=tensor, serial_operands=serial,
                   inflight_bytes_per_thread=rng.choice([16.0, 64.0]),
                   exposed_trips_per_flop=0.0 if dtype == "fp32" else 1e-6)
        for _ in range(300):
            pick = rng.random
            w = Work(pick() * 1e7 * (rng.random() < .8), pick() * 1e5 * (rng.random() < .8),
                     pick() * 1e4 * (rng.random() < .5), pick() * 1e5, pick() * 1e5,
                     pick() * 1e6 * (rng.random() < .8), pick() * 1e5 * (rng.random() < .5),
                     pick() * 1e4 * (rng.random() < .5), pick() * 1e5 * (rng.random() < .5))
            for n in (1, 2, 3, 4):
                x = gpu._terms(k, _fields(w), n, _FLOATS)
                want = (x["t"], _pipes_bound(x))
                assert gpu._pipes_of(k, _fields(w), n) == want
                assert gpu._pipes(k, w, n) == want
        assert gpu._pipes(k, Work(), 2) == (gpu._terms(k, _fields(Work()), 2, _FLOATS)["t"],
                                            "latency")


def test_longest_first_assignment_equals_its_plain_definition():
    """Gpu.assign (an argsort of the estimates with many classes, each class's cost once
    per work, no per-SM sort when the handout order already is one) hands out the
    classes as the plain longest-first rule does: classes by estimate, longest first,
    ties by class, each block to the least loaded SM (ties to the lower SM), each SM's
    list sorted longest first, ties in the order they came; with ties among the
    estimates, counts above one and works shared by classes."""
    import heapq
    import random

    gpu = Gpu(resolve("volta").spec)
    rng = random.Random(31)
    for n_classes in (20, 300):
        pool = [Work(*(rng.random() * 10 ** rng.randint(2, 8) for _ in range(9)))
                for _ in range(7)]
        k = Kernel("k", "64x64", 128, 64, 16384,
                   [(rng.choice([1, 1, 2, 5]), rng.choice(pool)) for _ in range(n_classes)])
        for occ in (1, 3):
            shares = gpu.block_shares(k, [w for _, w in k.blocks], occ)
            est = [gpu.block_cost(k, w, occ, shares[c][0]) for c, (_, w) in enumerate(k.blocks)]
            heap = [(0.0, sm) for sm in range(80)]
            want: list[list[int]] = [[] for _ in range(80)]
            for cls in sorted(range(len(est)), key=lambda c: (-est[c], c)):
                for _ in range(k.blocks[cls][0]):
                    t, sm = heap[0]
                    want[sm].append(cls)
                    heapq.heapreplace(heap, (t + est[cls], sm))
            for classes in want:
                classes.sort(key=est.__getitem__, reverse=True)
            assert gpu.assign(k, occ, shares) == want


def test_longest_first_by_loads_equals_the_heap():
    """_longest_first (SMs kept by load, a run of equal estimates handed to a load's SMs
    at once) gives the heap's handout step for step: runs of ties, counts above one,
    estimates of 0, ones below a load's last bit (1e-20 on loads of 1), infinite ones,
    one SM and many."""
    import heapq
    import random

    from hwsim.accelerators.volta.gpu import _longest_first

    def heap_handout(est, counts, sms):
        heap = [(0.0, sm) for sm in range(sms)]
        out: list[list[int]] = [[] for _ in range(sms)]
        for cls in sorted(range(len(est)), key=lambda c: (-est[c], c)):
            for _ in range(counts[cls]):
                t, sm = heap[0]
                out[sm].append(cls)
                heapq.heapreplace(heap, (t + est[cls], sm))
        return out

    values = [0.0, 1e-20, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 1e16, math.inf]
    for seed in range(1500):
        rng = random.Random(seed)
        pool = rng.sample(values, rng.randint(1, 6))
        n = rng.randint(1, 300)
        est = [rng.choice(pool) for _ in range(n)]
        counts = [rng.choice([1, 1, 2, 3]) if seed % 2 else 1 for _ in range(n)]
        sms = rng.choice([1, 2, 3, 5, 8, 80])
        got: list[list[int]] = [[] for _ in range(sms)]
        order = sorted(range(n), key=est.__getitem__, reverse=True)
        _longest_first(order, est, counts, got)
        assert got == heap_handout(est, counts, sms), seed


def test_plans_shortcuts_equal_their_definitions():
    """_plan_groups' shortcuts give the plan of its general path: one block per SM
    (per == 1) times each SM's list as the running sum of its shares, which the fluid
    schedule (_shared_sm_time at ratio 1) gives; few distinct average blocks take their
    ratios one by one (_ratios below FEW_RATIOS), which the numpy path gives; a work
    listed for many classes is costed once (block_shares by identity), and SM lists of
    the same works share one planned list: the plan of a copy per class, SMs grouped
    alike."""
    import random

    from hwsim.accelerators.volta import gpu as volta_gpu
    from hwsim.accelerators.volta.gpu import _plan_groups, _ratios, _run_size, _shared_sm_time

    gpu = Gpu(resolve("volta").spec)
    rng = random.Random(12)
    for many in (20, 300):
        works = [Work(*(rng.random() * 10 ** rng.randint(2, 8) for _ in range(9)))
                 for _ in range(5)]
        k = Kernel("k", "128x64", 256, 255, 40000,
                   [(rng.randint(1, 3), works[rng.randrange(5)]) for _ in range(many)],
                   serial_operands=True)
        plan = _plan_groups(gpu, k, 1)
        shares = gpu.block_shares(k, [w for _, w in k.blocks], 1)
        assert shares == [gpu.block_share(k, w, 1) for _, w in k.blocks]
        for classes, runs in zip(gpu.assign(k, 1, shares), plan):
            vals = [shares[c][0] for c in classes]
            if not vals:
                assert runs == []
                continue
            # the general path: the fluid schedule at ratio 1 (one block alone over itself)
            stretch = _shared_sm_time({1: 1.0}, vals, 1) / sum(vals)
            size = _run_size(classes)
            assert [t for _, _, _, t, _ in runs] == [
                sum(vals[c0:c0 + size]) * stretch for c0 in range(0, len(vals), size)]
        # the same plan as with a copy of the work for every class (no list shared):
        # the same runs, and the SMs grouped alike
        copied = Kernel("k", "128x64", 256, 255, 40000,
                        [(c, Work(*vars(w).values())) for c, w in k.blocks],
                        serial_operands=True)
        for per in (1, 2):
            shared, alone = _plan_groups(gpu, k, per), _plan_groups(gpu, copied, per)
            assert [[(r, w.key(), n, t, b) for r, w, n, t, b in runs] for runs in shared] == \
                [[(r, w.key(), n, t, b) for r, w, n, t, b in runs] for runs in alone]
            assert len({id(runs) for runs in shared}) < len({id(runs) for runs in alone})
            bld = Builder(gpu, lambda kernel, work: {}, "t")
            assert bld._sm_groups(shared) == bld._sm_groups(alone)
        avgs = [[rng.random() * 10 ** rng.randint(2, 8) for _ in range(8)]
                for _ in range(3)] * 4
        few = _ratios(gpu, k, avgs, 3)
        old = volta_gpu.FEW_RATIOS
        try:
            volta_gpu.FEW_RATIOS = 0  # numpy
            assert _ratios(gpu, k, avgs, 3) == few
        finally:
            volta_gpu.FEW_RATIOS = old


def test_the_planners_arrays_equal_their_loops():
    """The numpy paths of the planners (a causal attention's thousands of classes) give
    the floats of the per-object loops: Kernel.total against Work.add, block costs
    against block_cost, each tile's work against the loop over tiles."""
    import random

    import numpy as np

    from hwsim.accelerators.volta.attention import Tiles, _split_iters, _tile_works

    gpu = Gpu(resolve("volta").spec)
    rng = random.Random(5)
    works = [Work(*(rng.random() * 10 ** rng.randint(0, 8) for _ in range(9)))
             for _ in range(300)]
    k = Kernel("k", "64x64", 128, 64, 16384, [(rng.randint(1, 4), w) for w in works])
    ref = Work()
    for count, w in k.blocks:
        ref.add(w.scaled(count))
    assert k.total() == ref
    shares = gpu.block_shares(k, works, 2)
    assert gpu.block_costs(k, 2, [t for t, _ in shares]) == [
        gpu.block_cost(k, w, 2, shares[c][0]) for c, w in enumerate(works)]
    per_iter = Work(*(rng.random() * 1e6 for _ in range(9)))
    n = 200
    t = Tiles(64, 64, 1, np.array([rng.randint(1, 64) for _ in range(n)]),
              np.array([rng.randint(0, 300) for _ in range(n)]), np.zeros(n), np.zeros(n),
              np.zeros(n))
    for split, mode, in_l2 in ((1, "dense", True), (3, "dense", True), (4, "dense", False),
                               (1, "buffered", True)):
        unit_iters = float(np.sum(t.iters))
        runs, matrix = _tile_works(per_iter, t, split, unit_iters, n * split, 3.5e6, 128, 128,
                                   2.0, 2.0, 64, mode, in_l2, 7.5)
        got = [w for count, w in runs for _ in range(count)]
        want = []
        for i in range(n):  # the loop of _fused_kernels
            rows, n_i = int(t.rows[i]), int(t.iters[i])
            for it in _split_iters(n_i, split):
                w = per_iter.scaled(it)
                w.hbm_read = 3.5e6 * (it / unit_iters) + rows * 128 * 2.0 / split
                w.l2_bytes += rows * 128 * 2.0 / split
                if mode == "buffered":
                    w.l2_bytes += rows * it * 64 * 2.0 + rows * 8.0
                elif split == 1:
                    w.hbm_write = rows * 128 * 2.0
                    w.l2_bytes += rows * 128 * 2.0
                else:
                    part = rows * 128 * 4.0 + rows * 8.0
                    w.l2_bytes += part
                    if not in_l2:
                        w.hbm_write = part
                w.hbm_read += 7.5
                want.append(w)
        assert got == want, (split, mode)
        kernel = Kernel("k", "64x64", 128, 64, 16384, runs)
        assert (matrix == kernel.matrix).all()
        assert all(a != b for (_, a), (_, b) in zip(runs, runs[1:]))  # runs are maximal


def test_a_works_fields_are_in_the_order_the_matrix_reads_them():
    from hwsim.accelerators.volta.gpu import WORK_FIELDS

    assert tuple(vars(Work()).keys()) == WORK_FIELDS


def _carries(op):
    """No carry, and for an op the target carries: its first input on chip, its output
    kept on chip, and every input on chip with the output kept."""
    from hwsim.onchip import Carry

    out = [None]
    if TARGET.carries(op):
        out += [Carry((0,), ()), Carry((), (0,)), Carry(tuple(range(len(op.inputs))), (0,))]
    return out


@pytest.mark.parametrize("workload", ["workloads/bert-base.yaml",
                                      "workloads/attention-kernels.yaml",
                                      "workloads/llama2-7b-decode.yaml",
                                      "workloads/volta-long-context-256k.yaml",
                                      "workloads/gpt2-small-spatten.yaml"])
def test_the_analytical_summary_without_tasks_is_the_tasks_summary(workload, monkeypatch):
    """lower_summary (the analytical fidelity: the builder hands each task's fields to
    an Accumulator, no Task made, no label formatted) gives summarize(lower(...)) to the
    last bit, and the task count, for every op kind, with and without an on-chip carry
    (lower_carried's tasks), SMs grouped or one lane per SM, host KV over PCIe; and the
    kernel reports of the summary's build are those of the tasks' build."""
    from hwsim.engine import summarize
    from hwsim.simulate import prepare
    from hwsim.workload import load_workload

    wl = load_workload(workload)
    g, _ = prepare(wl)
    sp = resolve("volta").spec
    pools = TARGET.pools(sp)
    seen, kinds, carried = set(), set(), 0
    for op in g.ops:
        key = (op.kind, str(op.attrs), tuple(g.tensors[i].shape for i in op.inputs))
        if key in seen:
            continue
        seen.add(key)
        for grouping in (True, False):
            monkeypatch.setattr(TARGET, "grouping", grouping)
            for carry in _carries(op):
                got = TARGET.lower_summary(op, g, sp, wl.tiling, carry)
                reports = TARGET.kernels(op, g, sp, wl.tiling, carry or NONE)
                TARGET._built.clear()  # the tasks' own build, not the summary's
                tasks = (TARGET.lower_carried(op, g, sp, wl.tiling, carry) if carry
                         else TARGET.lower(op, g, sp, wl.tiling))
                want = summarize(tasks, pools)
                assert got == (want, len(tasks)), (op.name, carry)
                assert repr(got[0].analytical_latency_s) == repr(want.analytical_latency_s)
                assert repr(got[0].work_s) == repr(want.work_s)
                assert reports == TARGET.kernels(op, g, sp, wl.tiling, carry or NONE)
                kinds.add(op.kind)
                carried += bool(carry)
        TARGET._built.clear()
    assert kinds & {"matmul", "attention"}
    if "decode" not in workload:
        assert carried




def test_the_analytical_summary_on_random_ops(monkeypatch):
    """lower_summary against summarize(lower) on random GEMMs (shapes, types, batch,
    transposes, bias), memory-bound ops and attentions (causal or not, GQA, each
    strategy), with random on-chip carries: the same summary to the last bit."""
    import random

    from hwsim.engine import summarize
    from hwsim.onchip import Carry

    rng = random.Random(14)
    sp = resolve("volta").spec
    pools = TARGET.pools(sp)
    ops = []
    for _ in range(14):
        ops.append({"kind": "matmul", "m": rng.choice([1, 7, 64, 200, 1000, 3000]),
                    "n": rng.choice([8, 96, 768, 4096, 5000]),
                    "k": rng.choice([16, 64, 768, 3072, 11008]),
                    "batch": rng.choice([1, 1, 3, 12]),
                    "dtype": rng.choice(["fp16", "fp16", "fp32", "int8"])})
    for _ in range(4):
        ops.append({"kind": "softmax", "rows": rng.randint(1, 30000),
                    "cols": rng.choice([64, 77, 768, 4096]), "dtype": "fp16"})
        ops.append({"kind": "elementwise", "fn": "exp", "elements": rng.randint(1, 10 ** 7),
                    "dtype": rng.choice(["fp16", "fp32"])})
    for _ in range(6):
        q = rng.choice([1, 77, 512, 2048])
        ops.append({"kind": "attention", "heads": rng.choice([8, 12, 32]),
                    "head_dim": rng.choice([64, 128]), "q_len": q,
                    "kv_len": q if rng.random() < 0.6 else q + rng.randint(1, 3000),
                    "causal": rng.random() < 0.5})
    done = 0
    for spec_op in ops:
        for attention in ("auto", "standard", "flash"):
            if spec_op["kind"] != "attention" and attention != "auto":
                continue
            wl = workload([spec_op], tiling={"attention": attention})
            g = build_graph(wl)
            for op in g.ops:
                carries = [None]
                if TARGET.carries(op):
                    for _ in range(3):
                        ins = tuple(p for p in range(len(op.inputs)) if rng.random() < 0.5)
                        outs = (0,) if rng.random() < 0.5 else ()
                        carries.append(Carry(ins, outs))
                for grouping in (True, False):
                    monkeypatch.setattr(TARGET, "grouping", grouping)
                    for carry in carries:
                        TARGET._built.clear()
                        try:
                            tasks = (TARGET.lower_carried(op, g, sp, wl.tiling, carry) if carry
                                     else TARGET.lower(op, g, sp, wl.tiling))
                        except (InputError, UnsupportedOpError):
                            with pytest.raises((InputError, UnsupportedOpError)):
                                TARGET._built.clear()
                                TARGET.lower_summary(op, g, sp, wl.tiling, carry)
                            continue
                        got = TARGET.lower_summary(op, g, sp, wl.tiling, carry)
                        want = summarize(tasks, pools)
                        assert got == (want, len(tasks)), (spec_op, carry)
                        assert repr(got[0].analytical_latency_s) == repr(
                            want.analytical_latency_s)
                        done += 1
    TARGET._built.clear()
    assert done > 60


def test_a_carry_on_an_op_volta_does_not_carry_is_refused_by_both_paths():
    from hwsim.onchip import Carry

    wl = workload([ATTN])
    g = build_graph(wl)
    op = next(o for o in g.ops if o.kind == "attention")
    for lower in (TARGET.lower_carried, TARGET.lower_summary):
        with pytest.raises(ValueError, match="does not carry"):
            lower(op, g, spec(), wl.tiling, Carry((0,), ()))


def test_a_chain_in_the_accumulator_is_its_tasks_added_one_by_one():
    """Accumulator.add_chain (a transfer's pieces, each after the one before) gives the
    sums that add gives them one at a time: finish times, busy seconds per bound, pools."""
    import random

    from hwsim.engine import Accumulator, Task, summarize

    rng = random.Random(9)
    for _ in range(200):
        one, chain, tasks = Accumulator(), Accumulator(), []
        for _ in range(rng.randint(1, 6)):
            unit = rng.choice(["hbm", "l2", "sm0"])
            d = rng.random() * 10 ** -rng.randint(3, 9)
            bound = rng.choice(["memory", "onchip", "latency"])
            pool = rng.choice(["", "", "dram"])
            copies = rng.choice([1, 1, 3, 80])
            serial = copies > 1 and rng.random() < 0.7
            deps = tuple(rng.sample(range(len(tasks)), min(len(tasks), 2)))
            t = Task(unit, d, {"dram_read": rng.randint(0, 99)}, {"hbm_byte": 1.5}, deps,
                     bound, pool, "", copies, serial)
            tasks.append(t)
            one.add_task(t)
            chain.add_task(t)
            n = rng.randint(0, 40)
            for _ in range(n):
                tasks.append(Task(unit, d, {}, {}, (len(tasks) - 1,), bound, pool, "", copies,
                                  serial))
                one.add_task(tasks[-1])
            assert chain.add_chain(unit, d, n, bound, pool, copies, serial) == len(tasks) - 1
        assert chain.finish == one.finish
        assert chain.busy == one.busy
        assert chain.summary({"dram": 4}) == one.summary({"dram": 4}) == summarize(
            tasks, {"dram": 4})


def test_a_chunk_and_its_pieces_in_one_call_are_the_tasks_added_one_by_one():
    """Accumulator.add_copies (an SM group's chunk: no pool, copies side by side) and
    add_pieces (a transfer's first piece with its bytes, then its chain), as the volta
    builder's analytical path calls them, give the state add and add_chain give the
    same tasks one at a time: finish times, busy seconds per bound, bytes, actions."""
    import random

    from hwsim.engine import Accumulator, Task, summarize

    rng = random.Random(14)
    for _ in range(300):
        one, fast, tasks = Accumulator(), Accumulator(), []
        for _ in range(rng.randint(1, 8)):
            unit = rng.choice(["hbm", "l2", "sm0-79"])
            d = rng.random() * 10 ** -rng.randint(3, 9) if rng.random() < 0.9 else 0.0
            bound = rng.choice(["memory", "onchip", "compute"])
            copies = rng.choice([1, 1, 2, 80])
            deps = tuple(rng.sample(range(len(tasks)), min(len(tasks), rng.randint(0, 2))))
            nbytes = rng.choice([None, {}, {"l2_read": rng.randint(0, 99)},
                                 {"dram_read": rng.randint(0, 99), "dram_write": 0}])
            if rng.random() < 0.5:
                acts = rng.choice([None, {}, {"tensor_flop_fp16": rng.random() * 1e9,
                                              "l2_byte": 3.25}])
                t = Task(unit, d, nbytes or {}, acts or {}, deps, bound, "", "", copies)
                tasks.append(t)
                one.add_task(t)
                assert fast.add_copies(unit, d, nbytes, acts, deps, bound, copies) == \
                    len(tasks) - 1
                continue
            serial = copies > 1
            n = rng.randint(1, 12)
            tasks.append(Task(unit, d, nbytes or {}, {}, deps, bound, "", "", copies, serial))
            one.add_task(tasks[-1])
            for _ in range(n - 1):
                tasks.append(Task(unit, d, {}, {}, (len(tasks) - 1,), bound, "", "", copies,
                                  serial))
                one.add_task(tasks[-1])
            assert fast.add_pieces(unit, d, n, nbytes, deps, bound, copies, serial) == \
                len(tasks) - 1
        assert (fast.finish, fast.busy, fast.nbytes, fast.actions, fast.count) == \
            (one.finish, one.busy, one.nbytes, one.actions, one.count)
        assert fast.summary({"dram": 4}) == summarize(tasks, {"dram": 4})


def test_segment_sums_are_each_segments_running_sum():
    """segment_sums (every SM's classes and every run's, gathered and padded with -0.0)
    gives running_sum of each segment to the last bit: ragged lengths, repeated rows,
    zeros and negative zeros, and batches cut by SEGMENT_ROWS."""
    import random

    import numpy as np

    from hwsim.accelerators.volta import gpu as volta_gpu
    from hwsim.accelerators.volta.gpu import running_sum, segment_sums

    rng = random.Random(21)
    m = np.array([[rng.random() * 10 ** rng.randint(-3, 9) * (rng.random() < 0.8)
                   for _ in range(9)] for _ in range(500)])
    m[7] = -0.0
    m[8, 3] = -0.0
    segments = [[rng.randrange(500) for _ in range(rng.randint(1, 60))] for _ in range(300)]
    segments += [[7], [7, 7, 8], [8, 7]]
    want = [running_sum(m[s]) for s in segments]
    got = segment_sums(m, segments).tolist()
    assert [[repr(x) for x in row] for row in got] == [[repr(x) for x in row] for row in want]
    old = volta_gpu.SEGMENT_ROWS
    try:
        volta_gpu.SEGMENT_ROWS = 100  # many small batches
        assert segment_sums(m, segments).tolist() == got
    finally:
        volta_gpu.SEGMENT_ROWS = old
    assert segment_sums(m, []).shape == (0, 9)


def test_a_kernels_plan_is_kept_for_its_gpu_and_occupancy():
    """plan_groups keeps its plan on the kernel (an attention's tile choice and its
    build plan the same kernel): the kept plan is the one planned afresh, and another
    GPU or occupancy plans again."""
    from hwsim.accelerators.volta.gpu import _plan_groups, plan_groups

    wl = workload([ATTN])
    g = build_graph(wl)
    op = next(o for o in g.ops if o.kind == "attention")
    gpu = TARGET.gpu(spec())
    k = TARGET.kernels_of(op, g, spec(), wl.tiling)[0]
    per = gpu.occupancy(k.threads, k.regs, k.smem).blocks_per_sm
    first = plan_groups(gpu, k, per)
    assert plan_groups(gpu, k, per) is first
    assert first == _plan_groups(gpu, k, per)
    other = Gpu(spec(sms=40))
    assert plan_groups(other, k, per) is not first
    assert len(plan_groups(other, k, per)) == 40
    assert plan_groups(gpu, k, 1) == _plan_groups(gpu, k, 1)


def test_sms_are_grouped_as_the_plain_definition_groups_them():
    """Builder._sm_groups (lists found by identity, a pass per list when few) groups
    the SMs as the plain definition does: by equal runs, SMs in order, groups in order
    of their first SM; equal runs in distinct lists join one group."""
    import random

    from hwsim.accelerators.volta.gpu import _plan_groups

    rng = random.Random(4)
    bld = Builder(Gpu(spec()), lambda kernel, work: {}, "t")
    a = [(2, Work(1.0), 4, 1e-6, "compute")]
    b = [(1, Work(2.0), 3, 2e-6, "memory")]
    a_again = [(2, Work(1.0), 4, 1e-6, "compute")]  # equal to a, another list
    for n_lists in (1, 2, 3, 5, 9):
        pool = [a, b, a_again, []] + [[(1, Work(float(i)), 1, 1e-7 * i, "onchip")]
                                      for i in range(3, 3 + n_lists)]
        lists = pool[:n_lists]
        for _ in range(20):
            per_sm = [rng.choice(lists) for _ in range(80)]
            want: dict = {}
            for sm, runs in enumerate(per_sm):
                key = tuple((r, w.key(), n, t, bd) for r, w, n, t, bd in runs)
                want.setdefault(key, []).append(sm)
            assert bld._sm_groups(per_sm) == list(want.values())
    gpu = Gpu(spec())
    for count in (1, 79, 80, 81, 200, 1000):
        k = Kernel("k", "t", 256, 64, 0, [(count, Work(1e6, 0, 0, 0, 0, 1e5, 1e5))])
        for per in (1, 3):
            plan = _plan_groups(gpu, k, per)
            base, extra = divmod(count, 80)
            assert [sum(r * n for r, _, n, _, _ in runs) for runs in plan] == \
                [base + (sm < extra) for sm in range(80)]


def test_unequal_blocks_keep_the_lone_block_floor():
    """A split-KV decode of one-warp tiles (16 packed query rows) is bound by a lone
    block's pipes (one warp feeds an eighth of the tensor cores), more than its share of
    a full SM. A grid of unequal blocks (a key more: 257 key blocks over the splits) runs
    in the fluid schedule, which keeps that floor (its SM's average block alone) as a
    uniform grid's groups do: a key more never runs faster (it did, 4 % faster, when the
    full group's ratio cancelled the floor)."""
    from hwsim.accelerators.volta.gpu import Gpu, plan_groups

    op = {"kind": "attention", "heads": 32, "kv_heads": 2, "head_dim": 64, "q_len": 1,
          "causal": False}
    def run(kv):
        wl = workload([dict(op, kv_len=kv)])
        return hwsim.simulate(wl, "volta-v100-pcie").totals["latency_s"]

    assert run(16385) >= run(16384)
    s = resolve("volta-v100-pcie").spec
    gpu = Gpu(s)
    for kv in (16384, 16385):
        wl = workload([dict(op, kv_len=kv)])
        g = build_graph(wl)
        k = TARGET.kernels_of(g.ops[0], g, s, wl.tiling)[0]
        occ = gpu.occupancy(k.threads, k.regs, k.smem).blocks_per_sm
        for runs in plan_groups(gpu, k, occ):
            # the SM's average block alone (the floor its schedule keeps)
            total, blocks = Work(), 0
            for r, w, n, _, _ in runs:
                total.add(w.scaled(r))
                blocks += r * n
            alone = gpu.group_time(k, total.scaled(1.0 / blocks), 1)[0]
            assert sum(r * t for r, _, _, t, _ in runs) >= alone * (1 - 1e-9)
