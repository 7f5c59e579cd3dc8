"""The ARMv8 target on attention, whole models and its validation cases."""

from __future__ import annotations

import pytest
from conftest import ROOT, run_hwsim

import hwsim
from hwsim import zoo
from hwsim.accelerators.armv8 import TARGET
from hwsim.accelerators.armv8.attention import key_spans
from hwsim.targets import resolve
from hwsim.validate import run_cases
from hwsim.workload import build_graph, workload_from_dict
from hwsim.workload.schema import Tiling

STRATEGIES = ("openblas", "iaat", "autotsmm", "auto")


def attention(**kw):
    op = {"kind": "attention", "heads": 12, "head_dim": 64, "q_len": 512, "kv_len": 512}
    op.update(kw)
    return op


def sim(ops, sets=(), target="armv8", dtype="fp32"):
    wl = workload_from_dict({"name": "t", "ops": ops, "dtype": dtype}, "<test>")
    return hwsim.simulate(wl, target, sets=list(sets))


def plan_detail(op, tiling=None, target="armv8"):
    g = build_graph(workload_from_dict({"name": "t", "ops": [op], "dtype": "fp32"}, "<t>"))
    return TARGET.breakdown(g.ops[0], g, resolve(target).spec, tiling or Tiling())


# ------------------------------------------------------------------ attention
def test_flash_blocks_fit_half_a_core_l2_and_threads_cover_heads_and_blocks():
    b = plan_detail(attention())
    d = b["detail"]
    bq, bkv = d["block_q"], d["block_kv"]
    # Q, K, Kᵀ, V, S and O blocks of one unit in half of the 512 KiB L2
    assert 4 * (bq * 64 + bkv * 3 * 64 + bq * bkv + bq * 64) <= 256 * 1024
    assert b["threads"] == 64
    assert d["units"] == 12 * 512 // bq


def test_causal_attention_skips_blocks_above_the_diagonal():
    assert sum(key_spans(512, 512, False, 0, 64, 64)[1]) == 64
    assert sum(key_spans(512, 512, True, 0, 64, 64)[1]) == 36  # 8 x 9 / 2
    full = sim([attention(q_len=2048, kv_len=2048)]).totals["latency_s"]
    causal = sim([attention(q_len=2048, kv_len=2048, causal=True)]).totals["latency_s"]
    assert 0.45 < causal / full < 0.65


def _key_spans_arrays(q, kv, causal, window, bq_pos, bkv):
    """key_spans as it was written on numpy arrays (the planner's first definition)."""
    import numpy as np

    first = np.arange(0, q, bq_pos, dtype=np.int64)
    last = np.minimum(first + bq_pos, q) - 1
    rows = last - first + 1
    off = kv - q
    hi = np.minimum(kv - 1, last + off) if causal else np.full_like(first, kv - 1)
    if window > 0:
        lo = np.maximum(0, first + off - window + 1)
        if not causal:
            hi = np.minimum(kv - 1, last + off + window - 1)
    else:
        lo = np.zeros_like(first)
    ok = hi >= lo
    if window > 0:
        blocks = (hi - lo + bkv) // bkv
        width = np.minimum(kv - lo, blocks * bkv)
    else:
        b0, b1 = lo // bkv, hi // bkv
        blocks = b1 - b0 + 1
        width = np.minimum(kv, (b1 + 1) * bkv) - b0 * bkv
    return rows[ok].tolist(), blocks[ok].tolist(), width[ok].tolist()


def test_key_spans_and_their_run_sums_equal_the_array_definition():
    """key_spans (integer lists) is the array definition block for block, and the
    planner's sums, taken a run of alike blocks at a time, are the lists' sums: the
    blocks, rows x keys, rows, rows x min(v_len, keys) and the widest span."""
    import random

    from hwsim.accelerators.armv8.attention import _span_sums, _widest

    rng = random.Random(14)
    cases = [(4096, 4096, True, 0, 1, 1), (4096, 4096, True, 0, 16, 256),
             (4096, 4096, False, 0, 3, 1024), (1, 8192, False, 0, 1, 64),
             (700, 900, True, 0, 5, 128), (900, 700, True, 0, 7, 64),
             (1000, 1000, True, 200, 16, 64), (1000, 1000, False, 200, 8, 128)]
    for _ in range(400):
        q = rng.choice([1, 2, 7, 64, 100, 511, 512, rng.randint(1, 3000)])
        kv = rng.choice([1, q, q + rng.randint(0, 500), max(1, q - rng.randint(0, q))])
        cases.append((q, kv, rng.random() < 0.7, rng.choice([0, 0, 0, 1, 17, 300]),
                      rng.choice([1, 2, 3, 8, 16, 64, 256]), rng.choice([1, 7, 64, 256, 1024])))
    for q, kv, causal, window, bq, bkv in cases:
        rows, blocks, width = key_spans(q, kv, causal, window, bq, bkv)
        assert (rows, blocks, width) == _key_spans_arrays(q, kv, causal, window, bq, bkv)
        v_len = rng.choice([0, 1, 50, kv])
        got = _span_sums(q, kv, causal, window, bq, bkv, v_len)
        want = (float(sum(blocks)), float(sum(r * w for r, w in zip(rows, width))),
                float(sum(rows)), float(sum(r * min(v_len, w) for r, w in zip(rows, width))),
                max(width, default=0))
        assert got == want, (q, kv, causal, window, bq, bkv, v_len)
        widest = max(key_spans(q, kv, causal, window, bq, 1)[2], default=0)
        assert _widest(q, kv, causal, window, bq) == widest


def test_floor_sum_is_the_sum_of_floors():
    """_causal_sums' sum of floors (any signs of ``a`` and ``b``) is the plain sum, and
    a 4K causal prefill's sums at its block options are the lists' (its key blocks at
    every query block of one position)."""
    import random

    from hwsim.accelerators.armv8.attention import _floor_sum, _span_sums

    rng = random.Random(7)
    for _ in range(3000):
        n, m = rng.randint(0, 60), rng.randint(1, 50)
        a, b = rng.randint(-80, 80), rng.randint(-400, 400)
        assert _floor_sum(n, m, a, b) == sum((a * x + b) // m for x in range(n))
    for bq in (1, 3, 16, 256):
        for bkv in (64, 256, 1000):
            rows, blocks, width = key_spans(4096, 4096, True, 0, bq, bkv)
            assert _span_sums(4096, 4096, True, 0, bq, bkv, 1000) == (
                float(sum(blocks)), float(sum(r * w for r, w in zip(rows, width))),
                float(sum(rows)), float(sum(r * min(1000, w) for r, w in zip(rows, width))),
                max(width))


def test_standard_attention_round_trips_the_scores_and_flash_does_not():
    op = attention(heads=32, q_len=4096, kv_len=4096)  # S of all heads: 2 GiB in fp32
    flash = sim([op], ["tiling.attention=flash"]).totals
    std = sim([op], ["tiling.attention=standard"]).totals
    assert flash["dram_read_bytes"] < std["dram_read_bytes"] / 3
    assert flash["latency_s"] < std["latency_s"]


def test_decode_attention_splits_the_keys_across_cores():
    d = plan_detail(attention(q_len=1, kv_len=4096, causal=True))
    # 12 heads, 5 splits each: 60 threads with one split apiece (6 would leave 8 of
    # 72 splits for a second round)
    assert d["detail"]["kv_split"] == 5
    assert d["threads"] == 60


def test_softmax_exp_is_vector_work_in_the_attention_time():
    """The exp of every score is a vector polynomial; making it dearer slows the op."""
    base = sim([attention()]).totals["latency_s"]
    dear = sim([attention()], ["target.vexp_instructions=48"]).totals["latency_s"]
    assert dear > 1.2 * base


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("model,workload", [("bert-base", "bert-base.yaml"),
                                            ("gpt2", "gpt2-small-generation.yaml")])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_zoo_models_run_with_each_gemm_strategy(model, workload, strategy):
    phase = "decode" if model == "gpt2" else "prefill"
    if zoo.shipped_path(model, phase) is None:
        pytest.skip(f"no shipped {model} {phase} template in traces/")
    rep = hwsim.simulate(ROOT / "workloads" / workload, "armv8",
                         sets=["dtype=fp32", f"tiling.gemm={strategy}"])
    t = rep.totals
    assert t["latency_s"] > 0 and t["energy_j"] > 0
    assert set(rep.ops["bound"]) <= {"compute", "memory", "onchip", "latency"}
    if model == "gpt2":  # a decode step streams every weight from DRAM
        assert t["dram_read_bytes"] > 124e6 * 4 * 0.9


def test_bert_base_per_op_breakdown_separates_core_cache_and_dram():
    if zoo.shipped_path("bert-base", "prefill") is None:
        pytest.skip("no shipped bert-base template in traces/")
    wl = workload_from_dict({"name": "b", "model": "bert-base", "seq_len": 512,
                             "dtype": "fp32"}, "<t>")
    g = build_graph(wl)
    spec = resolve("armv8").spec
    ffn = next(op for op in g.ops if op.module.endswith("intermediate.dense"))
    b = TARGET.breakdown(ffn, g, spec, Tiling(gemm="openblas"))
    assert b["threads"] == 64 and b["kernel"] == "16x4"
    for key in ("in_core_s", "l1_s", "l2_s", "l3_s", "dram_s", "sync_s", "latency_s"):
        assert b[key] >= 0
    assert b["dram_s"] > 0  # the weights come from DRAM
    # the L3 stream overlaps the L1 and L2 transfers on the Kunpeng 920 (l3_overlaps)
    near = b["l1_s"] + b["l2_s"]
    transfers = max(near, b["l3_s"]) if spec.l3_overlaps else near + b["l3_s"]
    assert max(b["in_core_s"], transfers) <= b["latency_s"] * 1.01


def test_tinyllama_decode_streams_its_weights_and_auto_beats_openblas():
    rep = hwsim.simulate(ROOT / "workloads" / "armv8-tinyllama-decode.yaml", "armv8")
    # 1.1 B parameters in fp32 stream from DRAM once per step
    assert rep.totals["dram_read_bytes"] > 1.0e9 * 4
    ob = hwsim.simulate(ROOT / "workloads" / "armv8-tinyllama-decode.yaml", "armv8",
                        sets=["tiling.gemm=openblas"])
    assert rep.totals["latency_s"] < ob.totals["latency_s"]


@pytest.mark.parametrize("name", ["armv8-small-gemm.yaml", "armv8-tall-skinny.yaml"])
def test_kernel_study_workloads_run(name):
    rep = hwsim.simulate(ROOT / "workloads" / name, "armv8", sets=["tiling.gemm=auto"])
    assert len(rep.ops) >= 9 and rep.totals["latency_s"] > 0


# ------------------------------------------------------------------ validation
def test_validation_cases_pass():
    results = run_cases(target="armv8")
    assert len(results) >= 7
    bad = [f"{r.case.name}: {r.simulated} vs {r.case.expected} {r.message}"
           for r in results if not r.ok]
    assert not bad, bad


def test_hwsim_validate_prints_the_armv8_cases():
    proc = run_hwsim("validate", "--target", "armv8", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "armv8-kunpeng920" in proc.stdout and "IAAT" in proc.stdout
    assert "0 outside" in proc.stdout


@pytest.mark.parametrize("preset", ["armv8-kunpeng920", "armv8-graviton2", "armv8-ft2000plus"])
def test_tiler_picks_the_loops_kernel_with_the_same_cycles(preset):
    """The tiler weighs every candidate kernel at once on arrays, or (numpy not loaded)
    on the same table in Python floats; kernel by kernel (its definition) it picks the
    same first fastest kernel, parts and cycles, to the bit."""
    import random

    from hwsim.accelerators.armv8.gemm import (
        _tile_kernels,
        _tile_kernels_loop,
        _tile_kernels_plain,
    )
    from hwsim.accelerators.armv8.spec import Machine

    mach = Machine(resolve(preset).spec)
    rng = random.Random(14)
    sizes = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 127, 128, 129, 500, 4096]
    for _ in range(300):
        m, n = rng.choice(sizes + [rng.randint(1, 3000)]), rng.choice(sizes)
        depth = rng.choice([1, 16, 64, 128, 777])
        lanes = rng.choice([4, 8])
        along_n = rng.choice([None, False, True])
        min_cols = rng.choice([1, 1, 4, 8])
        got = _tile_kernels(m, n, depth, lanes, mach, along_n, min_cols)
        want = _tile_kernels_loop(m, n, depth, lanes, mach, along_n, min_cols)
        assert got == want and type(got[3]) is type(want[3])
        plain = _tile_kernels_plain(m, n, depth, lanes, mach, along_n, min_cols)
        assert plain == want and type(plain[3]) is type(want[3])


@pytest.mark.parametrize("preset", ["armv8-kunpeng920", "armv8-ft2000plus"])
def test_kept_kernel_steps_equal_a_new_run(preset):
    """A tile's kernel calls are kept per machine (kernels_step; a planner asks for the
    same ones for each thread cap, k block and sweep point), and each kernel call's
    terms (run_kernels): the step made from the kept sums, and run_kernels on a step
    with work in it, equal the plain loop's, field by field, to the bit, whether it is
    the first ask or a later one."""
    import random
    from dataclasses import asdict

    from hwsim.accelerators.armv8.ecm import Step
    from hwsim.accelerators.armv8.gemm import exact_parts, kernels_step, power_parts, run_kernels
    from hwsim.accelerators.armv8.spec import Machine

    mach = Machine(resolve(preset).spec)
    rng = random.Random(15)
    for _ in range(300):
        lanes = rng.choice([4, 8])
        m, n = rng.randint(1, 600), rng.randint(1, 300)
        rows = (power_parts if rng.random() < .5 else exact_parts)(m, rng.choice([8, 16]))
        cols = (power_parts if rng.random() < .5 else exact_parts)(n, rng.choice([4, 6]))
        depth = rng.choice([1, 7, 64, 256, 4096])
        want = Step("kernels")
        plain_run_kernels(want, rows, cols, depth, lanes, mach)
        for _ in range(2):  # made, then kept
            assert asdict(kernels_step("kernels", rows, cols, depth, lanes, mach)) == asdict(want)
            # on a step holding work already: the same sums as the plain loop's
            got, ref = (Step("x", arith_cycles=1 / 3, vop=7.0) for _ in range(2))
            run_kernels(got, rows, cols, depth, lanes, mach)
            plain_run_kernels(ref, rows, cols, depth, lanes, mach)
            assert asdict(got) == asdict(ref)


def plain_run_kernels(step, rows, cols, depth, lanes, mach):
    """run_kernels as first written, each call's terms computed where it is added (the
    definition that the kept terms are held to)."""
    from hwsim.accelerators.armv8.kernels import Kernel, kernel_counts, kernel_cycles

    spec = mach.spec
    for r, nr_ in rows:
        for c, nc_ in cols:
            calls = nr_ * nc_
            if not calls:
                continue
            ker = Kernel(r, c, lanes)
            step.arith_cycles += calls * kernel_cycles(ker, depth, spec)
            fmas, other = kernel_counts(ker, depth)
            step.vfma += calls * fmas
            step.vop += calls * other
            step.port_cycles += calls * (((ker.vecs + ker.bvecs) * depth + ker.accumulators)
                                         / spec.load_ports + ker.accumulators / spec.store_ports)


def test_attention_tiles_kept_per_machine_plan_as_new_ones():
    """The attention's tile kernels are kept per machine for every op and sweep point
    (they depend on the tile, head widths and type, not the sequence): plans of
    several shapes made on one machine, in turns, equal those made with a private
    memo each time, step by step."""
    from dataclasses import asdict

    from hwsim.accelerators.armv8.attention import _plan
    from hwsim.accelerators.armv8.spec import Machine
    from hwsim.ir.attention import AttentionShape

    mach = Machine(resolve("armv8").spec)
    shapes = []
    for seq, heads, d, dtype in ((128, 12, 64, "fp32"), (136, 12, 64, "fp32"),
                                 (96, 8, 128, "fp16"), (300, 4, 64, "fp32")):
        wl = workload_from_dict({"name": "t", "phase": "prefill", "dtype": dtype, "ops": [
            {"kind": "attention", "batch": 1, "heads": heads, "q_len": seq, "kv_len": seq,
             "head_dim": d, "causal": seq % 2 == 0}]})
        g = build_graph(wl)
        shapes.append(AttentionShape.of(g.ops[0], g))
    for _ in range(2):
        for sh in shapes:
            for strategy in ("openblas", "iaat"):
                for bq, bkv in ((16, 64), (32, 128), (8, 256)):
                    kept = _plan(mach, sh, "flash", bq, bkv, strategy)
                    new = _plan(mach, sh, "flash", bq, bkv, strategy, memo={})
                    assert [asdict(s) for s in kept.steps] == [asdict(s) for s in new.steps]
                    assert (kept.threads, kept.kernel, kept.detail) == \
                        (new.threads, new.kernel, new.detail)


def test_a_step_split_into_tiles_is_its_equal_parts():
    """ecm.split (labels made once per step name and count): equal tiles whose amounts
    add up to the step's, numbered labels, the barrier on the last tile only."""
    from dataclasses import asdict

    from hwsim.accelerators.armv8.ecm import Step, split

    for barrier in (False, True):
        st = Step("kernels", arith_cycles=10.0, port_cycles=3.0, dram_read=8e3, vop=7.0,
                  barrier=barrier, rounds=3)
        for parts in (1, 2, 8):
            tiles = split(st, parts)
            assert len(tiles) == parts
            if parts == 1:
                assert tiles == [st]
                continue
            assert [t.label for t in tiles] == [f"kernels {i + 1}/{parts}" for i in range(parts)]
            assert [t.barrier for t in tiles] == [False] * (parts - 1) + [barrier]
            one = asdict(st.scaled(1.0 / parts))
            for t in tiles:
                got = asdict(t)
                assert {k: v for k, v in got.items() if k not in ("label", "barrier")} == \
                    {k: v for k, v in one.items() if k not in ("label", "barrier")}
            assert len({id(t) for t in tiles}) == parts  # each its own object
