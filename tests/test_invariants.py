"""Physics invariants over random workloads, on every target and preset (issue 11).

Random kernel-study ops (every kind, random sizes, dtypes each target takes,
GQA, causal and sliding-window attention) and zoo models (prefill and decode,
every pruning method at random keep ratios) are simulated; what must hold is in
tests/physics.py, plus:

- a bigger machine (more DRAM bandwidth, cores, L2 / last-level cache, clock)
  never makes an op slower;
- more tokens (sequence or KV length) never make a run faster, and a step of
  one block costs no more than 10 % beyond the work it adds;
- pruning never reads more DRAM bytes outside its own machinery ops, nor holds
  a larger KV cache, than the unpruned run;
- analytical fidelity is a lower bound of event fidelity and within
  ``ANALYTICAL_BOUND`` of it (docs/architecture.md).

CI runs a few hundred derandomized examples; ``--runslow`` runs many more.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from physics import op_violations, violations

import hwsim
from hwsim.errors import InputError
from hwsim.targets import all_presets, resolve
from hwsim.workload import workload_from_dict

PRESETS = sorted(all_presets())
TARGET_OF = {p: t.name for p, (t, _) in all_presets().items()}
# dtypes each target computes (others are refused with a clear error, tested elsewhere)
DTYPES = {"roofline": ("fp16", "fp32"), "volta": ("fp16", "fp32"),
          "ascend": ("fp16", "bf16", "fp32"), "armv8": ("fp32", "fp16"),
          "spatten": ("fp16",)}
# the analytical schedule is a lower bound of the event schedule, at most this much below
ANALYTICAL_BOUND = 0.25

FAST = settings(max_examples=40, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=600, derandomize=False, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- strategies
sizes = st.sampled_from([1, 2, 7, 16, 64, 100, 128, 500, 1000, 1024, 2048, 4096])


@st.composite
def attention_op(draw):
    h = draw(st.sampled_from([1, 2, 4, 8, 32]))
    hk = draw(st.sampled_from([d for d in (1, 2, 4, 8, 32) if h % d == 0]))
    q = draw(st.sampled_from([1, 1, 4, 7, 128, 500, 2048, 4096]))
    kv = max(q, draw(st.sampled_from([1, 64, 1000, 4096, 16384, 32768])))
    op = {"kind": "attention", "heads": h, "kv_heads": hk,
          "head_dim": draw(st.sampled_from([64, 128])), "q_len": q, "kv_len": kv,
          "causal": draw(st.booleans()), "batch": draw(st.sampled_from([1, 1, 2]))}
    if draw(st.integers(0, 4)) == 0:
        op["window"] = draw(st.sampled_from([16, 256, 4096]))
    return op


@st.composite
def other_op(draw):
    kind = draw(st.sampled_from(["matmul", "matmul", "softmax", "layernorm", "rmsnorm",
                                 "elementwise", "reduce", "topk", "gather", "embedding",
                                 "rope", "concat", "kv_write"]))
    if kind == "matmul":
        return {"kind": kind, "m": draw(sizes), "n": draw(sizes), "k": draw(sizes),
                "batch": draw(st.sampled_from([1, 1, 4]))}
    if kind in ("softmax", "layernorm", "rmsnorm"):
        return {"kind": kind, "rows": draw(sizes), "cols": draw(st.sampled_from([64, 768, 4096]))}
    if kind == "elementwise":
        return {"kind": kind, "fn": draw(st.sampled_from(["add", "mul", "exp", "silu", "gelu",
                                                           "copy"])),
                "elements": draw(sizes) * draw(st.sampled_from([1, 64, 4096]))}
    if kind == "reduce":
        return {"kind": kind, "elements": 4096 * draw(sizes), "out_elements": draw(sizes)}
    if kind == "topk":
        n = draw(st.sampled_from([64, 1024, 4096]))
        return {"kind": kind, "n": n, "k": draw(st.sampled_from([1, 16, 64])),
                "rows": draw(sizes)}
    if kind == "gather":
        return {"kind": kind, "elements": 64 * draw(sizes), "rows": draw(st.sampled_from([1, 64]))}
    if kind == "embedding":
        return {"kind": kind, "tokens": draw(sizes), "dim": draw(st.sampled_from([768, 4096]))}
    if kind == "kv_write":
        n = 128 * draw(sizes)
        return {"kind": kind, "elements": n, "cache_elements": n * draw(st.sampled_from([1, 8]))}
    return {"kind": kind, "elements": 128 * draw(sizes)}


any_op = st.one_of(attention_op(), other_op())


def simulate_ops(ops, preset, dtype, sets=(), fidelity="event", **extra):
    wl = workload_from_dict({"name": "prop", "ops": list(ops), "dtype": dtype, **extra}, "<prop>")
    return hwsim.simulate(wl, preset, sets=list(sets), fidelity=fidelity)


def refused(e: InputError) -> bool:
    """A clean refusal (a type the machine lacks, a size that does not fit) is allowed."""
    text = str(e)
    return any(w in text for w in ("does not fit", "not supported", "has no", "no peak",
                                   "cannot", "exceeds"))


def run_or_skip(*args, **kwargs):
    try:
        return simulate_ops(*args, **kwargs)
    except InputError as e:
        if refused(e):
            return None
        raise


# ---------------------------------------------------------------- per-op physics
@pytest.mark.parametrize("preset", PRESETS)
@FAST
@given(op=any_op, data=st.data())
def test_ops_obey_peak_bandwidth_and_compulsory_bytes(preset, op, data):
    dtype = data.draw(st.sampled_from(DTYPES[TARGET_OF[preset]]))
    report = run_or_skip([op], preset, dtype)
    if report is None:
        return
    assert violations(report) == []


def op_latencies(op, preset, dtype):
    """(event, analytical) latency of each op the one-op workload lowers to: the event
    schedule of the target's tasks and its analytical summary (lower_summary), the
    op alone (no host, no launch gap); [] when the target refuses it cleanly."""
    from hwsim.engine import run_events
    from hwsim.simulate import prepare

    r = resolve(preset)
    wl = workload_from_dict({"name": "prop", "ops": [op], "dtype": dtype}, "<prop>")
    out = []
    try:
        g, _ = prepare(wl)
        for o in g.ops:
            tasks = r.target.lower(o, g, r.spec, wl.tiling)
            if tasks:
                out.append((run_events(tasks, r.target.pools(r.spec)).latency_s,
                            r.target.lower_summary(o, g, r.spec, wl.tiling)[0]
                            .analytical_latency_s))
    except InputError as e:
        if refused(e):
            return []
        raise
    return out


# (target, op kind, None: any) whose analytical bound is still more than ANALYTICAL_BOUND
# below the event schedule on some single ops, with the least ratio analytical / event
# met (a guard, the measured least rounded down; docs/architecture.md, "The analytical
# contract"). None today: the two gaps of the heads alone (ascend's decode-like split-KV
# attentions, 0.62-0.80; armv8's memory-bound ops whose DRAM lane ends before the last
# tile and the join, 0.73-0.80) closed with the resources' tails ("a resource's tail").
KNOWN_GAPS: dict = {}


@pytest.mark.parametrize("preset", PRESETS)
@settings(max_examples=30, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(op=any_op, data=st.data())
def test_an_ops_analytical_latency_bounds_its_event_schedule(preset, op, data):
    """Every op kind on every preset, alone: the analytical latency is never above the
    event schedule of the same tasks, and at most ANALYTICAL_BOUND below it (except
    the KNOWN_GAPS, held to their floor)."""
    dtype = data.draw(st.sampled_from(DTYPES[TARGET_OF[preset]]))
    target = TARGET_OF[preset]
    for e, a in op_latencies(op, preset, dtype):
        assert a <= e * (1 + 1e-9), (op, e, a)
        floor = KNOWN_GAPS.get((target, op["kind"]), KNOWN_GAPS.get((target, None)))
        if floor is None:
            assert e <= a * (1 + ANALYTICAL_BOUND), (op, e, a)
        else:
            assert a >= e * floor, (op, e, a)


@pytest.mark.parametrize("op", [
    {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 1, "kv_len": 4096},
    {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 16, "kv_len": 4096},
    {"kind": "attention", "heads": 32, "kv_heads": 8, "head_dim": 128, "q_len": 1,
     "kv_len": 6000},
    {"kind": "attention", "heads": 32, "kv_heads": 8, "head_dim": 128, "q_len": 1,
     "kv_len": 8192},
    {"kind": "attention", "heads": 32, "kv_heads": 8, "head_dim": 128, "q_len": 16,
     "kv_len": 4096},
    {"kind": "attention", "heads": 32, "kv_heads": 1, "head_dim": 128, "q_len": 1,
     "kv_len": 32768}])
def test_a_decode_split_kv_attention_keeps_the_analytical_contract(op):
    """A decode-like split-KV attention on the 910B: every core's loads wait for the
    op's launch (2.9 us) and queue on the one hbm unit, so that unit's busy time counts
    from the launch's end (its head), not from 0. Counted from 0 the bound came to
    0.70-0.80 of the event schedule (0.796, 0.794, 0.702, 0.749); from the head
    0.83-0.86, and never above it. Then each core still runs its walk after its last
    load, and a split-KV combine follows: the two last cases, GQA 32/8 with 16 queries
    and MQA at 32K, came to 0.625 and 0.717 from the head alone; with the walks' loads
    as parts with their tails (cv_pipeline._k_load_parts) the six are 0.929, 0.951,
    0.987, 0.988, 0.904 and 0.949."""
    for e, a in op_latencies(op, "ascend-910b", "fp16"):
        assert e / (1 + ANALYTICAL_BOUND) <= a <= e * (1 + 1e-9), (e, a)


@pytest.mark.parametrize("preset", PRESETS)
@settings(max_examples=6, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(op=any_op, repeat=st.integers(2, 5), data=st.data())
def test_a_repeated_op_obeys_physics_and_is_its_runs(preset, op, repeat, data):
    """An op that runs ``repeat`` times (one row with its count) obeys the same physics
    and costs what that many written-out copies cost (tests/test_repeat.py has the
    fixed cases)."""
    dtype = data.draw(st.sampled_from(DTYPES[TARGET_OF[preset]]))
    report = run_or_skip([op, {**op, "repeat": repeat}], preset, dtype)
    if report is None:
        return
    assert violations(report) == []
    out = simulate_ops([op] * (1 + repeat), preset, dtype)
    for key in ("flops", "executed_flops", "dram_read_bytes", "dram_write_bytes"):
        assert report.totals[key] == out.totals[key], key
    for key in ("latency_s", "energy_j"):
        assert report.totals[key] == pytest.approx(out.totals[key], rel=1e-12), key
    assert report.memory["total_bytes"] == out.memory["total_bytes"]


# bigger machines, per target: spec overrides that grow one resource each. More cores
# (SMs) come with their power budget: under a board power cap (hwsim.simulate.
# power_capped_s) a chip with more cores at the same TDP has more static power and less
# left for work, so it is not bigger in every resource and may rightly be slower.
BIGGER = {
    "roofline": ["dram_bw_bytes_per_s*2"],
    "volta": ["dram_bw_bytes_per_s*2", "dram_peak_bw_bytes_per_s*2", "l2_bytes*2",
              "clock_hz*1.25", "sms*1.2,power_limit_w*1.2"],
    "ascend": ["dram_bw_bytes_per_s*2", "l2_bytes*2", "clock_hz*1.25",
               "cube_cores*1.25,vector_cores*1.25"],
    "armv8": ["dram_transfers_per_s*2", "l3_bytes*2", "clock_hz*1.25",
              "cores*1.25,power_limit_w*1.25"],
    "spatten": ["dram_channels*2", "clock_hz*1.25"],
}


def grown(resolved_spec, change: str) -> list[str]:
    sets = []
    for part in change.split(","):
        field, factor = part.split("*")
        value = getattr(resolved_spec, field) * float(factor)
        if isinstance(getattr(resolved_spec, field), int):
            value = int(round(value))
        sets.append(f"target.{field}={value!r}")
    return sets


@pytest.mark.parametrize("preset", PRESETS)
@FAST
@given(op=any_op, data=st.data())
def test_a_bigger_machine_is_never_slower(preset, op, data):
    from hwsim.targets import resolve

    tgt = TARGET_OF[preset]
    dtype = data.draw(st.sampled_from(DTYPES[tgt]))
    change = data.draw(st.sampled_from(BIGGER[tgt]))
    base = run_or_skip([op], preset, dtype)
    if base is None:
        return
    big = simulate_ops([op], preset, dtype, sets=grown(resolve(preset).spec, change))
    assert big.totals["latency_s"] <= base.totals["latency_s"] * (1 + 1e-9), (
        f"{preset} with {change}: {base.totals['latency_s']} -> {big.totals['latency_s']} "
        f"({base.ops['detail'].iloc[0]!r} -> {big.ops['detail'].iloc[0]!r})")


@pytest.mark.parametrize("preset", PRESETS)
@FAST
@given(op=attention_op(), data=st.data())
def test_more_tokens_never_run_faster_nor_jump(preset, op, data):
    """One block more keys (and queries, for a prefill) costs more, and not more than
    10 % beyond the work it adds."""
    tgt = TARGET_OF[preset]
    dtype = data.draw(st.sampled_from(DTYPES[tgt]))
    step = data.draw(st.sampled_from([1, 64, 128]))
    bigger = dict(op, kv_len=op["kv_len"] + step,
                  q_len=op["q_len"] + (step if op["q_len"] > 1 else 0))
    base = run_or_skip([op], preset, dtype)
    if base is None:
        return
    more = run_or_skip([bigger], preset, dtype)
    if more is None:
        return
    t0, t1 = base.totals, more.totals
    assert t1["latency_s"] >= t0["latency_s"] * (1 - 1e-9), (op, bigger, t0, t1)
    work = max(t1["executed_flops"] / max(t0["executed_flops"], 1),
               (t1["dram_read_bytes"] + t1["dram_write_bytes"])
               / max(1, t0["dram_read_bytes"] + t0["dram_write_bytes"]), 1.0)
    if t1["latency_s"] > 1.10 * work * t0["latency_s"]:
        d0, d1 = base.ops["detail"].iloc[0], more.ops["detail"].iloc[0]
        assert d0 != d1, (f"{preset}: {t0['latency_s']} -> {t1['latency_s']} for work x{work:.3f}"
                          f" with the same detail {d0!r}")


# ---------------------------------------------------------------- models and pruning
MODELS = {"tinyllama-1.1b": ("prefill", "decode"), "gpt2": ("prefill", "decode"),
          "bert-base": ("prefill",)}
PRUNING = [
    ("spatten", {"keep": "K"}), ("lazyllm", {"keep": "K"}), ("layer-drop", {"keep": "K"}),
    ("heads", {"keep": "K"}), ("h2o", {"keep": "K"}), ("kvcrush", {"keep": "K"}),
    ("topk-attention", {"keep": "K"}), ("hip", {"keep": "K"}),
    ("spatten", {"keep": "K", "value_keep": "K"}),
]


def model_workload(model, phase, seq, pruning=(), **extra):
    data = {"name": f"{model}-{phase}", "model": model, "phase": phase,
            "seq_len": 1 if phase == "decode" else seq, "kv_len": seq if phase == "decode" else 0,
            "pruning": list(pruning), **extra}
    if model == "bert-base":
        data["dtype"] = "fp16"
    return workload_from_dict(data, "<prop>")


def applicable(method: str, model: str, phase: str) -> bool:
    if method in ("h2o", "kvcrush"):
        return phase == "decode"
    if method in ("lazyllm", "spatten") and model == "bert-base":
        return method == "spatten"
    return True


@pytest.mark.parametrize("preset", [p for p in PRESETS if TARGET_OF[p] != "spatten"]
                         + ["spatten"])
@settings(max_examples=12, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pruning_reads_no_more_than_the_unpruned_run(preset, data):
    model = data.draw(st.sampled_from(sorted(MODELS)))
    phase = data.draw(st.sampled_from(MODELS[model]))
    seq = data.draw(st.sampled_from([128, 256, 500]))
    method, params = data.draw(st.sampled_from(PRUNING))
    if not applicable(method, model, phase):
        return
    keep = data.draw(st.sampled_from([0.1, 0.3, 0.5, 0.9]))
    step = {"method": method, **{k: keep if v == "K" else v for k, v in params.items()}}
    # with cold caches: a method's machinery ops run between a producer and its reader
    # and may evict a tensor the unpruned run carried in the L2 (hwsim.onchip), so with
    # carrying the other ops can rightly read more; what this holds is the counting
    wl = model_workload(model, phase, seq, [step], onchip_carry=False)
    try:
        r = hwsim.simulate(wl, preset, baseline=True, fidelity="analytical")
    except InputError as e:
        if refused(e):
            return
        raise
    assert op_violations(r) == []
    ops = r.ops
    own = ops["pruning"].astype(str) != "" if "pruning" in ops else False
    pruned_reads = int(ops.loc[~own, "dram_read_bytes"].sum()) if "pruning" in ops else \
        int(ops["dram_read_bytes"].sum())
    dense_reads = r.baseline.totals["dram_read_bytes"] // r.devices
    assert pruned_reads <= dense_reads * (1 + 1e-9), (
        f"{preset} {model} {phase} {step}: {pruned_reads} B read outside the method's "
        f"machinery, {dense_reads} B unpruned")
    assert r.memory["kv_cache_bytes"] <= r.baseline.memory["kv_cache_bytes"] * (1 + 1e-9)


@pytest.mark.parametrize("preset", PRESETS)
@settings(max_examples=10, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(MODELS)), data=st.data())
def test_models_obey_physics_and_analytical_bounds_event(preset, model, data):
    phase = data.draw(st.sampled_from(MODELS[model]))
    seq = data.draw(st.sampled_from([64, 200, 512]))
    wl = model_workload(model, phase, seq)
    try:
        ev = hwsim.simulate(wl, preset)
    except InputError as e:
        if refused(e):
            return
        raise
    an = hwsim.simulate(wl, preset, fidelity="analytical")
    assert violations(ev) == []
    e, a = ev.totals["latency_s"], an.totals["latency_s"]
    assert a <= e * (1 + 1e-9)
    assert e <= a * (1 + ANALYTICAL_BOUND), f"{preset} {model}: event {e}, analytical {a}"


# ---------------------------------------------------------------- long runs
@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
@SLOW
@given(ops=st.lists(any_op, min_size=1, max_size=4), data=st.data())
def test_slow_many_ops_obey_physics(preset, ops, data):
    dtype = data.draw(st.sampled_from(DTYPES[TARGET_OF[preset]]))
    report = run_or_skip(ops, preset, dtype)
    if report is None:
        return
    assert violations(report) == []
