"""The ARMv8 target's shortcuts for speed give what the long way gives, to the last bit.

- the ``analytical`` fidelity takes an op's sums from its plan's steps without
  making its tasks (``ARMv8Target.lower_summary``, ``ecm.summarize_plan``): every
  report equals the one from making the tasks and summing them
  (``Target.lower_summary``, the lanes' tails from the tasks' backward pass), carried
  inputs and kept outputs included, and so does each summary of plans the planners
  rarely make, with its keys in the same order;
- (the interference solve in scalars is held to numpy's iteration in
  ``test_armv8_interference.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import hwsim
from hwsim.accelerators.armv8.target import ARMv8Target

WORKLOADS = [
    ("bert-base.yaml", []),  # GEMMs, softmax, layernorm, carried inputs
    ("armv8-small-gemm.yaml", []),  # IAAT
    ("armv8-tall-skinny.yaml", []),  # AutoTSMM
    ("armv8-tinyllama-decode.yaml", []),  # decode: few threads, GQA attention
    ("bert-base-spatten.yaml", ["seq_len=96"]),  # a top-k, attention selecting values
    ("llama2-7b-lazyllm.yaml", ["seq_len=512"]),  # every layer different
    # threads that stream at different rates (groups of lanes), one thread
    ("bert-base.yaml", ["tiling.threads=7", "tiling.placement=compact"]),
    ("armv8-tinyllama-decode.yaml", ["tiling.placement=interleave"]),
    ("bert-base.yaml", ["tiling.threads=1"]),
]


def _report(path, sets):
    r = hwsim.simulate(path, "armv8", sets=sets, fidelity="analytical")
    return repr(r.rows), repr(r.totals)


@pytest.mark.parametrize("name,sets", WORKLOADS)
def test_analytical_summary_without_tasks_is_the_tasks_summary(name, sets, monkeypatch):
    from pathlib import Path  # noqa: PLC0415

    path = str(Path(__file__).resolve().parents[1] / "workloads" / name)
    fast = _report(path, sets)
    monkeypatch.setattr(ARMv8Target, "lower_summary", _tasks_summary)
    assert _report(path, sets) == fast


def _tasks_summary(self, op, graph, spec, tiling, carry=None):
    """Target.lower_summary with the lanes' tails: summarize(tails=True) of the tasks,
    the reference of summarize_plan's (ecm._lane_tails)."""
    from hwsim.engine import summarize  # noqa: PLC0415

    tasks = (self.lower_carried(op, graph, spec, tiling, carry) if carry
             else self.lower(op, graph, spec, tiling))
    return summarize(tasks, self.pools(spec), tails=True), len(tasks)


@pytest.mark.parametrize("threads", [1, 2, 5, 24, 57, 64])
@pytest.mark.parametrize("shape", ["first_still", "no_dram", "no_call", "no_steps"])
def test_plan_summary_is_the_summary_of_its_tasks(threads, shape):
    """Plans the planners rarely make: a first step without DRAM traffic (the DRAM
    keys and units come later), none at all, no library call, no steps; threads in
    several groups of lanes (24 spread threads: full and partial clusters)."""
    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import Plan, Step, emit, summarize_plan  # noqa: PLC0415
    from hwsim.engine import summarize  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415

    spec = resolve("armv8").spec
    mach = TARGET.machine(spec)
    steps = []
    for i in range(6):
        st = Step("pack" if i == 2 else f"s{i}", arith_cycles=1000.0 + 37 * i,
                  port_cycles=900.0 + 50 * (i % 3), l1_bytes=4096.0 * i, l2_bytes=1000.5 * i,
                  l3_bytes=77.25 * i, vfma=10.0 * i, vop=3.5 * i, tlb_walks=0.5 * (i % 2))
        if shape != "no_dram" and (i or shape != "first_still"):
            st.dram_read, st.dram_write = 12345.6 / (i + 1), 100.0 * (i % 2)
        st.barrier = i % 2 == 1
        st.rounds = 1 + i % 3
        steps.append(st)
    if shape == "no_steps":
        steps = []
    plan = Plan("test", threads, steps, "fp32", 0.0 if shape == "no_call" else 2e-6)
    tasks = emit(plan, mach, "op")
    want = summarize(tasks, TARGET.pools(spec), tails=True)
    terms: list = []
    got, count = summarize_plan(plan, mach, TARGET.pools(spec), terms)
    assert count == len(tasks)
    assert repr(got) == repr(want)
    assert list(got.bytes) == list(want.bytes) and list(got.actions) == list(want.actions)
    # the report line's terms, summed on the way, are ARMv8Target._terms' to the last bit
    assert terms == [TARGET._terms(plan, mach)]
    assert repr(summarize_plan(plan, mach, TARGET.pools(spec))) == repr((got, count))


def test_breakdown_terms_are_the_steps_times_summed():
    """``_terms`` (a report's breakdown and description) computes :func:`.ecm.times`'
    terms inline: the same floats as summing ``times`` step by step."""
    from pathlib import Path  # noqa: PLC0415

    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import times  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload.build import build_graph  # noqa: PLC0415
    from hwsim.workload.loader import load_workload  # noqa: PLC0415

    spec = resolve("armv8").spec
    mach = TARGET.machine(spec)
    wl = load_workload(Path(__file__).resolve().parents[1] / "workloads" / "bert-base.yaml")
    graph = build_graph(wl)
    checked = 0
    for op in graph.ops:
        plan = TARGET.plan(op, graph, spec)
        if plan is None:
            continue
        # (an op's rates are its read/write mix's: the port has a lane each way)
        rate = min(mach.with_writes(plan.write_share).thread_rates(plan.threads))
        want = dict.fromkeys(("in_core_s", "pack_s", "l1_s", "l2_s", "l3_s", "tlb_s", "dram_s"),
                             0.0)
        for step in plan.steps:
            tm = times(step, mach, mach.l3_rate(plan.threads))
            want["in_core_s"] += tm.in_core
            if step.label.startswith(("pack", "pre-pack")):
                want["pack_s"] += tm.in_core
            want["l1_s"] += tm.l1
            want["l2_s"] += tm.l2
            want["l3_s"] += tm.l3
            want["tlb_s"] += tm.tlb
            want["dram_s"] += (step.dram_read + step.dram_write) / rate
        assert TARGET._terms(plan, mach) == want
        checked += 1
    assert checked > 10


def test_a_candidate_estimated_uncut_is_estimated_as_its_tiles():
    """Candidates keep each split step as its first tile and a count (``ecm.tiles``);
    the estimate reads them as the tiles, and the plan kept, cut
    (``ecm.materialize``), has the tiles ``ecm.split`` makes: the same estimate, the
    same steps. Barriers on split steps, repeated batches (OpenBLAS ``repeat``) and
    split-K merges (attention) included."""
    from dataclasses import asdict  # noqa: PLC0415

    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.attention import _plan  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import estimate, materialize  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import Gemm, _iaat_at, _tsmm_at, openblas  # noqa: PLC0415
    from hwsim.ir.attention import AttentionShape  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    mach = TARGET.machine(resolve("armv8").spec)
    cands = []
    for g in (Gemm(1, 3000, 4096, 4096, "fp32"), Gemm(12, 200, 64, 200, "fp32", True),
              Gemm(1, 4096, 11008, 4096, "fp16"), Gemm(4, 48, 48, 48, "fp32")):
        cands += [openblas(g, mach, cap) for cap in (1, 7, 64)]
        cands += [_iaat_at(g, mach, t, along) for t in (1, 16) for along in (False, True)]
        cands += [_tsmm_at(g, mach, t, span) for t in (2, 64) for span in (False, True)]
    for seq, causal in ((128, False), (40, True)):
        wl = workload_from_dict({"name": "t", "phase": "prefill", "dtype": "fp32", "ops": [
            {"kind": "attention", "batch": 1, "heads": 4, "q_len": seq, "kv_len": seq,
             "head_dim": 64, "causal": causal}]})
        graph = build_graph(wl)
        sh = AttentionShape.of(graph.ops[0], graph)
        cands += [_plan(mach, sh, "flash", 16, 64, "openblas", ways, cut=False)
                  for ways in (0, 1, 2)]
    assert any(p.runs and max(p.runs) > 1 for p in cands)
    assert any(p.detail.get("kv_split", 1) > 1 for p in cands)
    for p in cands:
        assert p.runs is not None
        uncut = estimate(p, mach)
        # the tiles split makes: numbered, the step's barrier on the last, the amounts
        # of the first (copies)
        want = []
        for first, n in zip(p.steps, p.runs):
            amounts = {k: v for k, v in asdict(first).items() if k not in ("label", "barrier")}
            want += [(first.label, first.barrier, amounts)] if n == 1 else [
                (f"{first.label} {i + 1}/{n}", first.barrier and i == n - 1, amounts)
                for i in range(n)]
        materialize(p)
        assert p.runs is None and estimate(p, mach) == uncut
        assert [(s.label, s.barrier,
                 {k: v for k, v in asdict(s).items() if k not in ("label", "barrier")})
                for s in p.steps] == want
        assert len({id(s) for s in p.steps}) == len(p.steps)  # each its own object


def test_carried_copies_the_steps_it_changes_and_leaves_the_plan_as_it_was():
    """``carried`` copies only the steps whose DRAM bytes it takes (the others are
    shared with the cached plan): the plan is unchanged, and the carried steps are
    what taking the bytes from copies of every step gives."""
    from dataclasses import asdict  # noqa: PLC0415

    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import Gemm, plan_gemm  # noqa: PLC0415
    from hwsim.accelerators.armv8.target import carried  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415

    mach = TARGET.machine(resolve("armv8").spec)
    for g in (Gemm(1, 512, 768, 768, "fp32"), Gemm(1, 4096, 4096, 4096, "fp16")):
        plan = plan_gemm(g, mach, "auto", mach.cores)
        before = [asdict(s) for s in plan.steps]
        total_r = sum(s.dram_read for s in plan.steps) * plan.threads
        total_w = sum(s.dram_write for s in plan.steps) * plan.threads
        for r, w in ((0.0, 0.0), (0.3 * total_r, 0.0), (total_r, 0.5 * total_w),
                     (2 * total_r, 2 * total_w)):
            got = carried(plan, r, w)
            assert [asdict(s) for s in plan.steps] == before
            want = [s.scaled(1.0) for s in plan.steps]
            for amount, field, order in ((r, "dram_read", want), (w, "dram_write", want[::-1])):
                need = amount / plan.threads
                for s in order:
                    if need <= 0:
                        break
                    take = min(getattr(s, field), need)
                    setattr(s, field, getattr(s, field) - take)
                    need -= take
            assert [asdict(s) for s in got.steps] == [asdict(s) for s in want]
            # every other field of the plan is the plan's
            assert {**asdict(got), "steps": None} == {**asdict(plan), "steps": None}


GEMMS = [(1, 3000, 4096, 4096, "fp16"), (1, 4096, 11008, 4096, "fp32"), (12, 200, 64, 200, "fp32"),
         (1, 1, 4096, 4096, "fp32"), (8, 4096, 128, 128, "fp16"), (1, 77, 3072, 768, "fp64"),
         (3, 5, 7, 9, "fp32"), (1, 600, 600, 600, "fp32"), (32, 128, 128, 64, "fp32")]


@pytest.mark.parametrize("shape", GEMMS)
def test_openblas_caps_passed_over_could_not_have_won(shape):
    """Each cap's lower bound is below its plan's estimate, and planning the caps in
    the order of their bounds, stopping when a bound exceeds the best so far, keeps
    the plan that estimating every cap keeps (the first of the least)."""
    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import estimate, fastest  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import (  # noqa: PLC0415
        Gemm,
        _openblas_best,
        openblas,
        openblas_bound_s,
        openblas_caps,
        openblas_floor_s,
    )
    from hwsim.targets import resolve  # noqa: PLC0415

    b, m, n, k, dtype = shape
    g = Gemm(b, m, n, k, dtype)
    for preset in ("armv8", "armv8-graviton2"):
        mach = TARGET.machine(resolve(preset).spec)
        caps = openblas_caps(g, mach.cores)
        plans = [openblas(g, mach, cap) for cap in caps]
        for cap, plan in zip(caps, plans):
            assert openblas_floor_s(g, mach, cap) <= estimate(plan, mach)
            assert openblas_bound_s(g, mach, cap) <= estimate(plan, mach)
        want = fastest(plans, mach)
        got = _openblas_best(g, mach, caps, {})
        assert (got.threads, got.detail["grid"], estimate(got, mach)) == \
            (want.threads, want.detail["grid"], estimate(want, mach))


_sizes = hs.sampled_from([1, 3, 16, 64, 100, 333, 1000, 1024, 2048, 3000, 4096, 11008])


@settings(max_examples=80, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(m=_sizes, n=_sizes, k=_sizes, batch=hs.sampled_from([1, 1, 2, 5, 12]),
       dtype=hs.sampled_from(["fp32", "fp16", "fp64"]), broadcast=hs.booleans(),
       preset=hs.sampled_from(["armv8-kunpeng920", "armv8-kunpeng920-2s", "armv8-graviton2",
                               "armv8-thunderx2", "armv8-ft2000plus"]),
       placement=hs.sampled_from(["compact", "spread", "interleave"]),
       limit=hs.sampled_from([0, 1, 7, 24, 37, 64]))
def test_the_openblas_search_keeps_what_estimating_every_cap_keeps(
        m, n, k, batch, dtype, broadcast, preset, placement, limit):
    """On random GEMMs (sizes, batch, broadcast operands, dtype), presets, placements and
    thread limits: each cap's bounds (:func:`gemm.openblas_bound_s`, and the estimate
    at :meth:`Machine.share_floor`'s stretch, bandwidths alone, with its die's bound
    and with its die's solve) are under its plan's estimate, and the search
    (:func:`gemm._openblas_best`: caps in a heap by their bounds, plans made only
    while a bound is under the best) keeps the plan that estimating every cap keeps,
    the first of the least, with the same estimate to the last bit."""
    from hwsim.accelerators.armv8.ecm import estimate, fastest  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import (  # noqa: PLC0415
        Gemm,
        _openblas_best,
        openblas,
        openblas_bound_s,
        openblas_caps,
    )
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415

    base = Machine(resolve(preset).spec)
    if dtype == "fp16" and not base.spec.fp16_arith:
        dtype = "fp32"
    g = Gemm(batch, m, n, k, dtype, a_broadcast=broadcast and batch > 1)
    mach = base.for_run(limit, placement)
    caps = openblas_caps(g, mach.cores)
    got = _openblas_best(g, mach, caps, {})  # (first: on rates not solved yet)
    plans = [openblas(g, mach, cap) for cap in caps]
    for cap, plan in zip(caps, plans):
        est = estimate(plan, mach)
        assert openblas_bound_s(g, mach, cap) <= est
        for die, solve in ((False, True), (True, False), (True, True)):
            assert estimate(plan, mach, mach.share_floor(plan.threads, die, solve)) <= est
    want = fastest(plans, mach)
    assert (got.threads, got.detail["grid"], estimate(got, mach)) == \
        (want.threads, want.detail["grid"], estimate(want, mach))


@pytest.mark.parametrize("preset", ["armv8-kunpeng920", "armv8-kunpeng920-2s", "armv8-graviton2",
                                    "armv8-thunderx2", "armv8-ft2000plus"])
def test_no_thread_streams_faster_than_the_rate_ceiling(preset):
    """``Machine.rate_ceiling`` (Little's law at the least latency, no queueing) bounds
    every thread's stream rate, on every placement and thread count: the planners'
    bound that passes over candidates rests on it."""
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415

    for over in ({}, {"dram_interference_s": 27.5e-9}):
        mach = Machine(resolve(preset, over).spec)
        assert mach.floor_share is not None and mach.floor_share <= 1.0
        for placement in ("spread", "compact", "interleave"):
            m = mach.for_run(0, placement)
            for t in sorted({1, 2, 3, 7, 16, 23, mach.cores // 2 + 1, mach.cores - 1,
                             mach.cores}):
                assert max(m.thread_rates(t)) <= m.rate_ceiling
                # the stretch's bounds without this count's solve (Machine.share_floor):
                # under the solved one, and the die's within a few thousandths of it
                share = m.slot_bw / m.slowest_rate(t)
                assert m.share_floor(t) <= m.share_floor(t, True) <= share
                # and the die's bound without its solve (Machine._die_bound): still under
                assert m.share_floor(t) <= m.share_floor(t, True, False) <= share
                if t > 1 and placement != "interleave":
                    assert m.share_floor(t, True) >= 0.99 * share


def _plain_fastest(plans, mach):
    from hwsim.accelerators.armv8.ecm import estimate  # noqa: PLC0415

    est = [estimate(p, mach) for p in plans]
    return plans[est.index(min(est))], est


@pytest.mark.parametrize("seq,causal,heads,dtype", [
    (3100, True, 32, "fp16"), (700, False, 12, "fp32"), (96, True, 8, "fp32"),
    (33, False, 2, "fp32")])
def test_candidates_passed_over_never_change_the_choice(seq, causal, heads, dtype):
    """``fastest`` estimates last the candidates whose thread count has no rates yet
    and passes over those slower than their strategy's best even at the rate ceiling:
    on a fresh machine (no rates solved) it keeps the plan the plain search keeps,
    every strategy's least estimate is in its memo, and it asks for fewer rates."""
    from hwsim.accelerators.armv8.attention import _plan, block_options  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import fastest  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import STRATEGIES, thread_counts  # noqa: PLC0415
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.ir.attention import AttentionShape  # noqa: PLC0415
    from hwsim.ir.dtypes import nbytes  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    spec = resolve("armv8").spec
    wl = workload_from_dict({"name": "t", "phase": "prefill", "dtype": dtype, "ops": [
        {"kind": "attention", "batch": 1, "heads": heads, "q_len": seq, "kv_len": seq,
         "head_dim": 128, "causal": causal}]})
    graph = build_graph(wl)
    sh = AttentionShape.of(graph.ops[0], graph)
    fresh, plain = Machine(spec), Machine(spec)
    plans, ref = [], []
    for m, out in ((fresh, plans), (plain, ref)):  # attention_plan's candidates
        blocks = block_options(sh.q_len * sh.group, sh.kv_len, sh.head_dim, sh.v_head_dim,
                               nbytes(1, sh.dtype), m)
        for strat in STRATEGIES:
            for bq, bkv in blocks:
                most = _plan(m, sh, "flash", bq, bkv, strat, cut=False)
                out.append(most)
                out += [_plan(m, sh, "flash", bq, bkv, strat, w, cut=False)
                        for w in thread_counts(most.detail["kv_split"])[:-1]]
    memo: dict = {}
    got = fastest(plans, fresh, memo)
    want, est = _plain_fastest(ref, plain)
    assert plans.index(got) == ref.index(want)
    for st in STRATEGIES:
        assert min(memo[id(p)][1] for p in plans if p.strategy == st and id(p) in memo) == \
            min(e for p, e in zip(ref, est) if p.strategy == st)
    assert len(fresh._rates) <= len(plain._rates)
    if seq == 3100:  # candidates on other thread counts than the best, passed over
        assert sum(id(p) in memo for p in plans) < len(plans)
        assert len(fresh._rates) < len(plain._rates)


@pytest.mark.parametrize("op", [
    {"q_len": 3100, "kv_len": 3100, "heads": 32, "causal": True},
    {"q_len": 700, "kv_len": 700, "heads": 12},
    {"q_len": 1, "kv_len": 4096, "heads": 32, "kv_heads": 8, "causal": True},  # split-K
    {"q_len": 2, "kv_len": 300, "heads": 4},
    {"q_len": 512, "kv_len": 512, "heads": 8, "causal": True, "window": 100},
    {"q_len": 256, "kv_len": 256, "heads": 8, "v_len": 40},  # values selected
])
def test_attention_bound_skips_only_candidates_that_cannot_win(op):
    """``attention_plan`` meets its candidates by ``lower_bound`` and never makes those
    that cannot beat their strategy's best: the bound is at most every candidate's
    estimate, and on a fresh machine the plan kept (its steps, threads and detail,
    each strategy's least estimate) is the one the plain search over every candidate,
    each made and estimated, keeps; and fewer plans are made than candidates."""
    from hwsim.accelerators.armv8 import attention  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import estimate, materialize  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import STRATEGIES, thread_counts  # noqa: PLC0415
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.ir.attention import AttentionShape  # noqa: PLC0415
    from hwsim.ir.dtypes import nbytes  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    spec = resolve("armv8").spec
    wl = workload_from_dict({"name": "t", "phase": "prefill", "dtype": "fp32", "ops": [
        {"kind": "attention", "batch": 1, "head_dim": 64, **op}]})
    graph = build_graph(wl)
    sh = AttentionShape.of(graph.ops[0], graph)
    plain = Machine(spec)
    ref = []
    blocks = attention.block_options(sh.q_len * sh.group, sh.kv_len, sh.head_dim,
                                     sh.v_head_dim, nbytes(1, sh.dtype), plain)
    for strat in STRATEGIES:
        for bq, bkv in blocks:
            most = attention._plan(plain, sh, "flash", bq, bkv, strat, cut=False)
            ref.append(most)
            ref += [attention._plan(plain, sh, "flash", bq, bkv, strat, w, cut=False)
                    for w in thread_counts(most.detail["kv_split"])[:-1]]
            for w in [0] + thread_counts(most.detail["kv_split"])[:-1]:
                head = attention._head(plain, sh, "flash", bq, bkv, strat, w)
                p = attention._plan(plain, sh, "flash", bq, bkv, strat, w, cut=False)
                assert 0 < attention.lower_bound(plain, head) < estimate(p, plain)
    want, est = _plain_fastest(ref, plain)
    want = materialize(want)

    fresh = Machine(spec)
    made = []
    real = attention._plan
    try:
        attention._plan = lambda *a, **k: made.append(a) or real(*a, **k)
        got = attention.attention_plan(graph.ops[0], graph, fresh, None, "auto")
    finally:
        attention._plan = real
    assert (got.threads, got.strategy, got.kernel, got.serial_s) == \
        (want.threads, want.strategy, want.kernel, want.serial_s)
    assert got.steps == want.steps
    assert {k: v for k, v in got.detail.items() if k != "auto_estimates_s"} == want.detail
    assert got.detail["auto_estimates_s"] == {
        st: min(e for p, e in zip(ref, est) if p.strategy == st) for st in STRATEGIES}
    assert len(made) < len(ref)


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(kind=hs.sampled_from(["softmax", "rmsnorm", "layernorm", "gelu", "add", "rope"]),
       rows=hs.sampled_from([1, 3, 64, 333, 2826, 4096]),
       cols=hs.sampled_from([5, 128, 4096, 11008]),
       dtype=hs.sampled_from(["fp32", "fp16"]),
       preset=hs.sampled_from(["armv8-kunpeng920", "armv8-kunpeng920-2s", "armv8-graviton2",
                               "armv8-thunderx2", "armv8-ft2000plus"]),
       placement=hs.sampled_from(["compact", "spread", "interleave"]),
       limit=hs.sampled_from([0, 1, 7, 24, 64]),
       share=hs.sampled_from([0.0, 0.0, 0.3125, 0.5]))
def test_the_vector_search_keeps_what_estimating_every_count_keeps(
        kind, rows, cols, dtype, preset, placement, limit, share):
    """On random vector ops, presets, placements, thread limits and mixes of reads and
    write-backs (the machine of the op's mix, :meth:`Machine.with_writes`, as
    :func:`vector.vector_plan` searches on it): each thread count's bound
    (:func:`vector._floors_s`, on rates solved or not; a die's bound without its
    solve where not) is under its plan's
    estimate, and the search that makes only the candidates whose bound is under the
    first estimate (:func:`vector._search`) keeps the plan that estimating every count
    keeps, the first of the least, with the same estimate to the last bit."""
    from hwsim.accelerators.armv8.ecm import estimate, fastest  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import thread_counts  # noqa: PLC0415
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.accelerators.armv8.vector import _at, _floors_s, _search  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415

    mach = Machine(resolve(preset).spec).for_run(limit, placement).with_writes(share)
    if dtype == "fp16" and not mach.spec.fp16_arith:
        dtype = "fp32"
    s = 2 if dtype == "fp16" else 4
    size = rows * cols * s
    ops, loads, stores, passes, row = {
        "softmax": (10.0, 3.0, 2.0, 3.0, cols * s), "rmsnorm": (4.0, 3.0, 1.0, 2.0, cols * s),
        "layernorm": (6.0, 4.0, 1.0, 2.0, cols * s), "gelu": (20.0, 1.0, 1.0, 1.0, 0.0),
        "add": (1.0, 2.0, 1.0, 1.0, 0.0), "rope": (4.0, 3.0, 1.0, 1.0, 0.0)}[kind]
    reads = [float(size)] * (2 if kind == "add" else 1)
    args = (-(-rows * cols // mach.lanes(dtype)), ops, loads, stores, passes, row, reads,
            [float(size)], dtype, mach)
    got = _search(args, mach)  # (first: on rates not solved yet)
    counts = []  # (the counts vector_plan tried before the bound, each estimated)
    for t in thread_counts(mach.cores):
        if t > 1 and args[0] < 2 * t:
            break
        counts.append(t)
    plans = [_at(t, *args) for t in counts]
    for floor, plan in zip(_floors_s(counts, args, mach), plans):
        assert floor <= estimate(plan, mach)
    want = fastest(plans, mach)
    assert (got.threads, repr(got.steps), estimate(got, mach)) == \
        (want.threads, repr(want.steps), estimate(want, mach))


def test_a_vector_op_seen_before_gets_the_plan_a_fresh_machine_gives():
    """``vector_plan`` keeps the plan it chose per machine by what the candidates
    are made of: an op of the same sizes asked again (another layer's, another sweep
    point's) gets, field by field, the plan a fresh machine's full search gives, its
    steps shared but its detail its own; ops of other sizes are not confused with it,
    and carrying an op's inputs on chip leaves the shared steps as they were."""
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.accelerators.armv8.vector import vector_plan  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    spec = resolve("armv8").spec
    ops = [{"kind": "softmax", "rows": r, "cols": c} for r, c in ((64, 128), (3, 5), (512, 4096))]
    ops += [{"kind": "layernorm", "rows": 64, "cols": 128},
            {"kind": "elementwise", "fn": "gelu", "elements": 1 << 20},
            {"kind": "elementwise", "fn": "add", "elements": 1 << 20}]
    graph = build_graph(workload_from_dict({"name": "t", "phase": "prefill", "dtype": "fp32",
                                            "ops": ops}))
    kept = Machine(spec)
    first = [vector_plan(op, graph, kept) for op in graph.ops]
    assert kept._vector_plans  # the choices are kept
    for op, one in zip(graph.ops, first):
        again = vector_plan(op, graph, kept)
        fresh = vector_plan(op, graph, Machine(spec))
        assert repr(again) == repr(fresh) == repr(one)
        assert again.steps is one.steps and again.detail is not one.detail
    assert len({p.threads for p in first}) > 1  # the sizes chose differently
    from hwsim.accelerators.armv8.target import carried  # noqa: PLC0415

    one = first[0]
    before = repr(one.steps)
    moved = sum(s.dram_read for s in one.steps) * one.threads
    out = carried(one, moved / 2, moved / 4)
    assert out.steps is not one.steps and repr(out.steps) != before
    assert repr(vector_plan(graph.ops[0], graph, kept).steps) == before


def test_the_plan_kept_for_the_last_op_follows_a_changed_op():
    """``_plan_of`` knows the op just planned again without its key, but an op whose
    attributes changed since is planned anew."""
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    r = resolve("armv8")
    graph = build_graph(workload_from_dict({"name": "t", "phase": "prefill", "dtype": "fp32",
                                            "ops": [{"kind": "softmax", "rows": 64,
                                                     "cols": 128}]}))
    op = graph.ops[0]
    t = ARMv8Target()
    p = t._plan_of(op, graph, r.spec, None)
    assert t._plan_of(op, graph, r.spec, None) is p
    op.attrs["rows"] = 4096
    q = t._plan_of(op, graph, r.spec, None)
    assert q is not p and repr(q) == repr(t.plan(op, graph, r.spec, None))


def test_a_kept_gemm_plan_is_a_new_plan_each_time():
    """``gemm.plan_gemm`` keeps a GEMM's plan per machine (a model's layers repeat their
    GEMMs): each call gets the plan a new search gives (the same steps, to the last
    bit) in a plan of its own, whose steps are the kept plan's; the target's bias read
    adds to a copy of its step, so a GEMM with a bias changes no later call's plan."""
    from dataclasses import asdict  # noqa: PLC0415

    from hwsim.accelerators.armv8 import TARGET  # noqa: PLC0415
    from hwsim.accelerators.armv8.ecm import materialize  # noqa: PLC0415
    from hwsim.accelerators.armv8.gemm import Gemm, _plan_gemm, plan_gemm  # noqa: PLC0415
    from hwsim.accelerators.armv8.spec import Machine  # noqa: PLC0415
    from hwsim.targets import resolve  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    mach = Machine(resolve("armv8").spec)
    for g in (Gemm(1, 3000, 4096, 4096, "fp16"), Gemm(1, 1, 4096, 4096, "fp32"),
              Gemm(12, 64, 64, 64, "fp32")):
        fresh = materialize(_plan_gemm(g, Machine(resolve("armv8").spec), "auto", 64))
        first = plan_gemm(g, mach, "auto", 64)
        again = plan_gemm(g, mach, "auto", 64)
        assert again is not first and again.steps is not first.steps
        assert again.detail is not first.detail
        for p in (first, again):
            assert [asdict(s) for s in p.steps] == [asdict(s) for s in fresh.steps]
            assert (p.threads, p.kernel, p.detail) == (fresh.threads, fresh.kernel, fresh.detail)
    # a linear layer with a bias, planned twice by the target: the second is the first
    spec = resolve("armv8").spec
    graph = build_graph(workload_from_dict({"name": "t", "model": "bert-base", "seq_len": 128,
                                            "phase": "prefill", "dtype": "fp32"}))
    op = next(o for o in graph.ops if o.kind == "matmul" and len(o.inputs) > 2)  # a bias
    plans = [TARGET.plan(op, graph, spec) for _ in range(2)]
    assert [asdict(s) for s in plans[0].steps] == [asdict(s) for s in plans[1].steps]
    kept = TARGET.machine(spec)
    plain = plan_gemm(TARGET._gemm(op, graph, kept), kept, "auto", kept.cores)
    assert sum(s.dram_read for s in plans[0].steps) > sum(s.dram_read for s in plain.steps)
