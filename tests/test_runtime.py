"""The host lane (hwsim.runtime): an op starts on the device when the host has
issued it and the device is free; small kernels wait for the host, large ones
hide it. Read from the Chrome trace and the op table."""

from __future__ import annotations

import pytest
from conftest import dump_yaml

import hwsim
from hwsim.report.chrome import chrome_events
from hwsim.runtime import PLATFORMS, host_times

SMALL = {"kind": "matmul", "m": 16, "n": 16, "k": 16, "dtype": "fp16"}
# a kernel between the host's call and the device's launch on the V100: 2.2 us of work
MID = {"kind": "matmul", "m": 128, "n": 128, "k": 128, "dtype": "fp16"}
LARGE = {"kind": "matmul", "m": 4096, "n": 4096, "k": 4096, "dtype": "fp16"}
# a kernel launched without a library's host path (the launch call alone, 3.8 us on the
# V100), between that call and the device's launch: 1.4 us of work (a 512 KiB copy)
MID_COPY = {"kind": "elementwise", "fn": "copy", "elements": 262144, "dtype": "fp16"}


def _run(tmp_path, ops, runtime, target="volta-v100-sxm2"):
    wl = dump_yaml(tmp_path / f"{runtime}.yaml", {"name": "rt", "runtime": runtime, "ops": ops})
    return hwsim.simulate(wl, target)


def test_small_kernels_wait_for_the_host_large_ones_hide_it(tmp_path):
    report = _run(tmp_path, [SMALL, SMALL, LARGE, SMALL, SMALL], "eager")
    events = chrome_events(report)
    lanes = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["tid"]}
    host = [e for e in events if e["ph"] == "X" and lanes[e["tid"]] == "host"]
    ops = [e for e in events if e["ph"] == "X" and e["tid"] == 1]
    assert len(host) == len(ops) == 5
    h = PLATFORMS["cuda"].op_host_s("eager", "matmul") * 1e6
    for i, (issue, op) in enumerate(zip(host, ops)):
        assert op["ts"] >= issue["ts"] + issue["dur"] - 1e-6  # never before its issue
        assert issue["ts"] == pytest.approx(i * h)  # the host issues back to back
    # the small ones before the large GEMM start when issued: host-bound
    for issue, op in zip(host[:3], ops[:3]):
        assert op["ts"] == pytest.approx(issue["ts"] + issue["dur"])
    # the host issued the two after it long before the GEMM ended: they start at its end
    gemm_end = ops[2]["ts"] + ops[2]["dur"]
    assert host[4]["ts"] + host[4]["dur"] < gemm_end
    assert ops[3]["ts"] == pytest.approx(gemm_end)
    assert report.ops["host_wait_s"].iloc[3] == 0.0
    # the run: the device's ops plus its waits
    t = report.totals["latency_s"]
    assert t == pytest.approx(report.ops["latency_s"].sum() + report.host_wait_s)
    assert t == pytest.approx((ops[-1]["ts"] + ops[-1]["dur"]) * 1e-6)


def test_runtimes_order_small_kernels(tmp_path):
    """Many small kernels: eager is host-bound, a captured graph hides the host; the
    per-kernel device work is the same in all."""
    lat = {rt: _run(tmp_path, [SMALL] * 20, rt).totals["latency_s"]
           for rt in ("eager", "library", "fused", "graph")}
    assert lat["eager"] > lat["library"] >= lat["graph"]
    assert lat["eager"] == pytest.approx(20 * PLATFORMS["cuda"].op_host_s("eager", "matmul")
                                         + _run(tmp_path, [SMALL], "graph").ops
                                         ["latency_s"].iloc[0], rel=0.01)


def test_waits_draw_static_power(tmp_path):
    eager = _run(tmp_path, [SMALL] * 5, "eager")
    graph = _run(tmp_path, [SMALL] * 5, "graph")
    static = eager.target.spec.static_power_w
    extra = eager.totals["energy_j"] - graph.totals["energy_j"]
    # a captured graph's kernels are queued: their launches hide behind the kernel
    # before them (launch_hidden_s), which the device does not spend either
    hidden = sum(r.get("launch_hidden_s", 0.0) for r in graph.rows)
    assert hidden > 0 and not any(r.get("launch_hidden_s") for r in eager.rows)
    assert extra == pytest.approx(static * (eager.host_wait_s - graph.host_wait_s + hidden),
                                  rel=1e-9)


def test_fused_engine_folds_pointwise_ops():
    kinds = ["matmul", "elementwise", "rope", "view", "elementwise", "matmul"]
    cuda = PLATFORMS["cuda"]
    fused = host_times(kinds, cuda, "fused")
    assert fused == [cuda.per_op_s["fused"], 0.0, 0.0, 0.0, cuda.per_op_s["fused"],
                     cuda.per_op_s["fused"]]
    assert host_times(kinds, cuda, "graph")[1:] == [0.0] * 5
    assert host_times(kinds, None, "eager") == [0.0] * 6  # a target without a host


def test_no_host_lane_on_targets_without_one(tmp_path):
    report = _run(tmp_path, [SMALL] * 3, "eager", target="roofline-v100")
    assert report.host_lane == [] and report.host_wait_s == 0.0


def test_bad_runtime_is_one_line(tmp_path):
    with pytest.raises(hwsim.errors.InputError, match="runtime"):
        _run(tmp_path, [SMALL], "jit")


def test_on_a_cpu_the_host_does_not_overlap(tmp_path):
    """On a CPU the framework runs on the cores that run the kernels: each op waits for
    its own dispatch, so eager adds its host time to every op."""
    ops = [dict(SMALL, dtype="fp32"), dict(LARGE, m=256, n=256, k=256, dtype="fp32")]
    eager = _run(tmp_path, ops, "eager", target="armv8-kunpeng920")
    h = PLATFORMS["cpu"].per_op_s["eager"]
    assert eager.totals["latency_s"] == pytest.approx(eager.ops["latency_s"].sum() + 2 * h)


def _schedule_in_engine(names, host_s, device_s, overlaps):
    """The reference: the two lanes as engine tasks, run by the event engine."""
    from hwsim import engine
    from hwsim.engine import Task

    tasks = []
    for i, (h, d) in enumerate(zip(host_s, device_s)):
        host_deps = ((2 * i - 2,) if i else ()) + ((2 * i - 1,) if i and not overlaps else ())
        tasks.append(Task("host", h, deps=host_deps, bound="latency", label=f"issue {names[i]}"))
        tasks.append(Task("device", d, deps=(2 * i,) + ((2 * i - 1,) if i else ()),
                          label=names[i]))
    sched = engine.run_events(tasks)
    issue, start, ends = sched.ends_s[0::2], sched.starts_s[1::2], sched.ends_s[1::2]
    wait = [start[0]] + [max(0.0, start[i] - ends[i - 1]) for i in range(1, len(start))]
    lane = [(t.label, s0, s1) for t, s0, s1 in zip(tasks[0::2], sched.starts_s[0::2], issue)
            if s1 > s0]
    return list(issue), list(start), wait, lane, max(ends)


@pytest.mark.parametrize("overlaps", [True, False])
def test_the_lanes_are_the_event_engines_schedule_to_the_last_bit(overlaps):
    """schedule() computes the two chains directly; the event engine, given them as
    tasks, gives the same floats (host-bound and device-bound stretches, zero-length
    issues and ops, equal times)."""
    import random

    from hwsim.runtime import schedule

    rng = random.Random(14)
    for _ in range(200):
        n = rng.randint(1, 40)
        pick = [0.0, 1e-6, 3e-6, 7.3e-6, 2.5e-5, 1e-3]
        host_s = [rng.choice(pick) * rng.choice([1.0, rng.random()]) for _ in range(n)]
        device_s = [rng.choice(pick) * rng.choice([1.0, rng.random()]) for _ in range(n)]
        names = [f"op{i}" for i in range(n)]
        got = schedule(names, host_s, device_s, overlaps=overlaps)
        want = _schedule_in_engine(names, host_s, device_s, overlaps)
        assert (got.issue_end_s, got.start_s, got.wait_s, got.host_lane, got.latency_s) == want


# ------------------------------------------------------------------ queued launches
def _queued_reference(host_s, device_s, hide, repeats=None, repeat_host_s=None):
    """Run by run: the host issues back to back; run j ends at
    max(issue_j + hide_j, end_{j-1}) + d_j - hide_j (its launch taken in from its issue,
    its kernels after the previous run's), hide_j = min(hide, d_j). Returns the end,
    the device's idle time and the launch time spent behind the previous run."""
    repeats = repeats or [1] * len(device_s)
    repeat_host_s = repeat_host_s or [0.0] * len(device_s)
    t_host = end = idle = hidden = 0.0
    first = True
    for h, d, n, hr in zip(host_s, device_s, repeats, repeat_host_s):
        for j in range(n):
            t_host += h if j == 0 else hr
            hj = min(hide, d)
            if first:
                end, idle, first = t_host + d, t_host, False
                continue
            idle += max(0.0, t_host - end)
            hidden += min(hj, max(0.0, end - t_host))
            end = max(t_host + hj, end) + d - hj
    return end, idle, hidden


def test_queued_launches_follow_the_run_by_run_rule_also_for_repeated_ops():
    """schedule() with a launch that overlaps the op before (a GPU): its closed form for
    an op's later runs equals running them one by one, in every regime (device-bound,
    host-bound, in between, ops without device time)."""
    import random

    from hwsim.runtime import schedule

    rng = random.Random(13)
    for _ in range(300):
        n = rng.randint(1, 12)
        pick = [0.0, 1e-6, 3.5e-6, 3.8e-6, 6.9e-6, 2.5e-5]
        host_s = [rng.choice(pick) * rng.choice([1.0, rng.random()]) for _ in range(n)]
        device_s = [rng.choice(pick) * rng.choice([1.0, rng.random()]) for _ in range(n)]
        repeats = [rng.choice([1, 1, 2, 3, 50, 1000]) for _ in range(n)]
        rest = [rng.choice(pick) * rng.choice([1.0, rng.random()]) for _ in range(n)]
        hide = rng.choice([0.5e-6, 3.5e-6, 1e-5])
        got = schedule([f"op{i}" for i in range(n)], host_s, device_s, repeats=repeats,
                       repeat_host_s=rest, queued_launch_s=hide)
        end, idle, hidden = _queued_reference(host_s, device_s, hide, repeats, rest)
        assert got.latency_s == pytest.approx(end, rel=1e-9, abs=1e-15)
        assert sum(got.wait_s) == pytest.approx(idle, rel=1e-9, abs=1e-15)
        assert sum(got.hidden_s) == pytest.approx(hidden, rel=1e-9, abs=1e-15)
        # the device lane is its ops (less what they hid) and its waits, end to end
        busy = sum(d * k for d, k in zip(device_s, repeats)) - sum(got.hidden_s)
        assert got.latency_s == pytest.approx(busy + sum(got.wait_s), rel=1e-9, abs=1e-15)


def test_queued_small_kernels_pay_the_gap_not_the_launch(tmp_path):
    """A. Gray's CUDA Graphs measurement on a V100 (NVIDIA blog, 2019): a 2.9 us kernel
    runs at 3.8 us per kernel launched back to back from the host, 3.4 us inside a graph.
    On the model, a queued kernel's launch is taken in while the one before it runs, so
    a captured graph of small kernels costs each its kernel time plus kernel_gap_s, not
    plus the whole kernel_launch_s; the host-bound library runs stay at the host's rate,
    and a single op still pays its launch whole (the measured single-call GEMM cases)."""
    spec = hwsim.targets.resolve("volta-v100-sxm2").spec
    one = _run(tmp_path, [SMALL], "graph")
    d = one.ops["latency_s"].iloc[0]
    kernel = d - spec.kernel_launch_s
    graph = _run(tmp_path, [SMALL] * 20, "graph")
    per = (graph.totals["latency_s"] - one.totals["latency_s"]) / 19
    assert per == pytest.approx(kernel + spec.kernel_gap_s, rel=1e-9)
    # the launch, less the gap, hides behind the kernel before (paid serially before)
    assert d - per == pytest.approx(spec.kernel_launch_s - spec.kernel_gap_s, rel=1e-9)
    # a kernel of the benchmark's own is issued every 3.8 us (the launch call), slower
    # than the queued kernels run: the host sets the pace (each kernel starts a launch
    # after its issue, as the blog's 3.8 us), and an op longer than the host's call
    # overlaps the previous op's tail by d - 3.8 us
    lib = _run(tmp_path, [MID_COPY] * 20, "library")
    d = lib.rows[0]["latency_s"]
    kernel = d - spec.kernel_launch_s
    h = PLATFORMS["cuda"].op_host_s("library", "elementwise")
    assert h == PLATFORMS["cuda"].per_op_s["library"] == pytest.approx(3.8e-6)
    assert kernel + spec.kernel_gap_s < h < d
    assert lib.totals["latency_s"] == pytest.approx(20 * h + d, rel=1e-9)
    for row in lib.rows[1:]:
        assert row["launch_hidden_s"] == pytest.approx(d - h, rel=1e-9)
    # an op shorter than the host's call hides nothing: each waits for its issue (a GEMM
    # through cuBLAS: its host path, then the launch call)
    lib = _run(tmp_path, [SMALL] * 5, "library")
    h = PLATFORMS["cuda"].op_host_s("library", "matmul")
    assert not any(r["launch_hidden_s"] for r in lib.rows)
    assert lib.totals["latency_s"] == pytest.approx(5 * h + lib.rows[0]["latency_s"],
                                                    rel=1e-9)
    # eager issues every ~12 us, past each op's end: the device idles, nothing hides
    eager = _run(tmp_path, [SMALL] * 5, "eager")
    assert not any(r.get("launch_hidden_s") for r in eager.rows)
    # a large GEMM hides the next op's launch: it starts gap after the GEMM's end
    kernel = one.ops["latency_s"].iloc[0] - spec.kernel_launch_s
    rep = _run(tmp_path, [LARGE, SMALL], "library")
    small = rep.rows[1]
    assert small["launch_hidden_s"] == pytest.approx(spec.kernel_launch_s - spec.kernel_gap_s)
    assert rep.totals["latency_s"] == pytest.approx(
        rep.rows[0]["start_s"] + rep.rows[0]["latency_s"] + spec.kernel_gap_s + kernel)
    # the trace draws the small op's kernel after the GEMM's last task, not a launch later
    events = chrome_events(rep)
    gemm_end = max(e["ts"] + e["dur"] for e in events
                   if e["ph"] == "X" and e.get("args", {}).get("op") == rep.rows[0]["id"])
    small_tasks = [e for e in events if e["ph"] == "X"
                   and e.get("args", {}).get("op") == small["id"]]
    kernel_start = min(e["ts"] for e in small_tasks if "launch" not in e["name"])
    assert kernel_start == pytest.approx(gemm_end + spec.kernel_gap_s * 1e6, abs=1e-3)
    assert max(e["ts"] + e["dur"] for e in small_tasks) == pytest.approx(
        rep.totals["latency_s"] * 1e6, abs=1e-3)


def test_the_kernels_of_one_op_queue_their_launches():
    """cuBLAS enqueues a split-K GEMM's reduction right behind the GEMM: the stream takes
    its launch in while the GEMM runs, and the reduction starts kernel_gap_s after the
    GEMM's last block, not a whole launch after it (hwsim.accelerators.volta.gpu.Builder
    .start). The plan estimate follows the same rule (gpu.queued_start_s)."""
    from hwsim.accelerators.volta.gpu import queued_start_s

    wl = {"name": "sk", "ops": [{"kind": "matmul", "m": 64, "n": 64, "k": 65536}],
          "dtype": "fp16"}
    from hwsim.workload import workload_from_dict
    rep = hwsim.simulate(workload_from_dict(wl, "<sk>"), "volta-v100-sxm2")
    spec = rep.target.spec
    assert "splitK" in rep.rows[0]["detail"]
    lane = rep.lanes[0]
    launches = [(s, e) for u, label, s, e in lane if u == "stream" and "launch" in label]
    gaps = [(s, e) for u, label, s, e in lane if u == "stream" and "gap" in label]
    assert len(launches) == 2 and len(gaps) == 1
    gemm_end = max(e for u, label, s, e in lane if u != "stream" and "splitKreduce" not in label)
    # the reduction's launch ran while the GEMM did; only the gap follows the GEMM
    assert launches[1] == pytest.approx((spec.kernel_launch_s, 2 * spec.kernel_launch_s))
    assert launches[1][1] < gemm_end
    assert gaps[0] == pytest.approx((gemm_end, gemm_end + spec.kernel_gap_s))
    reduce_start = min(s for u, label, s, e in lane if "splitKreduce" in label and u != "stream")
    assert reduce_start == pytest.approx(gemm_end + spec.kernel_gap_s)
    # the rule without tasks: a later kernel waits for the one before it, or for its own
    # launch when the one before is shorter than a launch
    assert queued_start_s(spec, 0.0, 0.0, True) == spec.kernel_launch_s
    assert queued_start_s(spec, 4e-6, 50e-6, False) == pytest.approx(50.5e-6)
    assert queued_start_s(spec, 4e-6, 5e-6, False) == pytest.approx(7.4e-6)


@pytest.mark.parametrize("preset", ["volta-v100-sxm2", "volta-v100-pcie", "ascend-910b",
                                    "ascend-910a"])
def test_hidden_launches_never_break_the_physics(tmp_path, preset):
    """A launch hidden behind the op before comes off an op's latency but never below
    its own work or its time at the board's power limit: chains of GEMMs near the
    PCIe board's 250 W, bandwidth-bound copies and small kernels keep every row under
    the peaks and the power limit (tests/physics.py)."""
    from physics import violations

    mid = dict(LARGE, m=1024, n=1024, k=1024)
    copy = {"kind": "elementwise", "fn": "copy", "elements": 1 << 22, "dtype": "fp16"}
    ops = [SMALL, LARGE, LARGE, mid, copy, copy, SMALL, mid, copy]
    for runtime in ("library", "graph"):
        rep = _run(tmp_path, ops, runtime, target=preset)
        assert violations(rep) == []
        assert any(r["launch_hidden_s"] > 0 for r in rep.rows)
        for r in rep.rows:
            assert r["launch_hidden_s"] <= (rep.target.spec.kernel_launch_s
                                            - rep.target.spec.kernel_gap_s) * (1 + 1e-12)
