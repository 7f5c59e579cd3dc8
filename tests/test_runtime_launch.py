"""A kernel launch split between the host and the device (hwsim.runtime): the host's
launch call is in the host lane, the device's latency from enqueue to start is the
target's ``kernel_launch_s``, and a queued kernel pays only ``kernel_gap_s`` after the
one before it. Each is paid once: a lone small kernel costs host call + device latency
+ its work; ``n`` queued small kernels take ``n`` times the slower of the host's call
and the kernel plus its gap, plus one latency."""

from __future__ import annotations

import random

import pytest
from conftest import dump_yaml

import hwsim
from hwsim.errors import InputError
from hwsim.runtime import PLATFORMS, schedule
from hwsim.targets import resolve

SMALL = {"kind": "matmul", "m": 16, "n": 16, "k": 16, "dtype": "fp16"}
# on the V100 a kernel longer than the host's call less the launch (2.2 us of work);
# on the 910B one shorter than its two host calls (7.6 us)
MID = {"kind": "matmul", "m": 128, "n": 128, "k": 128, "dtype": "fp16"}
# (preset, host platform, the unit its launch tasks run on)
DEVICES = [("volta-v100-sxm2", "cuda", "stream"), ("ascend-910b", "cann", "launch")]


def _run(tmp_path, ops, runtime, target, sets=None):
    wl = dump_yaml(tmp_path / f"{runtime}.yaml", {"name": "rt", "runtime": runtime, "ops": ops})
    return hwsim.simulate(wl, target, sets=sets or [])


def test_the_v100_split_reproduces_grays_three_measurements():
    """A. Gray, "Getting Started with CUDA Graphs" (NVIDIA Technical Blog, 2019), on a
    V100: a 2.9 us kernel takes 9.6 us per kernel launched and synchronised one at a time,
    3.8 us launched back to back, 3.4 us inside a graph. The host call (3.8 us), the
    device latency (2.9 us) and the queued gap (0.5 us) were derived from them; run
    through the two lanes they give the three back (the schedule composes them, no
    formula per case)."""
    spec = resolve("volta-v100-sxm2").spec
    cuda = PLATFORMS["cuda"]
    kernel = 2.9e-6
    d = spec.kernel_launch_s + kernel
    hide = resolve("volta-v100-sxm2").target.queued_launch_s(spec)
    h = cuda.per_op_s["library"]

    def per_kernel(host_s, n=200):
        names = [f"k{i}" for i in range(n)]
        long = schedule(names, host_s(n), [d] * n, queued_launch_s=hide).latency_s
        short = schedule(names[:-1], host_s(n - 1), [d] * (n - 1),
                         queued_launch_s=hide).latency_s
        return long - short

    # one launch, then synchronise: the host call, the device latency and the kernel
    lone = schedule(["k"], [h], [d], queued_launch_s=hide).latency_s
    assert lone == pytest.approx(9.6e-6, rel=1e-9)
    # back to back from the host: the host's rate
    assert per_kernel(lambda n: [h] * n) == pytest.approx(3.8e-6, rel=1e-9)
    # a captured graph: one launch, then the kernels at kernel + gap
    graph = lambda n: [cuda.graph_launch_s + cuda.per_op_s["graph"]] + [0.0] * (n - 1)  # noqa: E731
    assert per_kernel(graph) == pytest.approx(3.4e-6, rel=1e-9)


@pytest.mark.parametrize("preset,platform,unit", DEVICES)
def test_a_lone_small_kernel_pays_the_host_call_and_the_device_latency_once(
        tmp_path, preset, platform, unit):
    rep = _run(tmp_path, [SMALL], "library", preset)
    spec = rep.target.spec
    h = PLATFORMS[platform].op_host_s("library", "matmul")
    row = rep.rows[0]
    # the device waits for the host's call, then runs the op: its launch, then its work
    assert rep.host_wait_s == pytest.approx(h, rel=1e-12)
    assert rep.totals["latency_s"] == pytest.approx(h + row["latency_s"], rel=1e-12)
    assert row["launch_hidden_s"] == 0.0
    # the op's device time holds one launch, of the device's latency, and nothing more
    launches = [(s, e) for u, label, s, e in rep.lanes[0] if u == unit]
    assert len(launches) == 1
    assert launches[0][1] - launches[0][0] == pytest.approx(spec.kernel_launch_s, rel=1e-12)
    work = row["latency_s"] - spec.kernel_launch_s
    assert 0.0 < work < spec.kernel_launch_s  # a small kernel: the launch is most of it


@pytest.mark.parametrize("preset,platform,unit", DEVICES)
def test_n_queued_small_kernels_take_n_times_the_slower_rate_plus_one_latency(
        tmp_path, preset, platform, unit):
    n = 20
    spec = resolve(preset).spec
    plat = PLATFORMS[platform]
    one = _run(tmp_path, [MID], "graph", preset)
    d = one.rows[0]["latency_s"]
    kernel = d - spec.kernel_launch_s
    # the library's host is slower than the kernels: its rate, then one latency and kernel
    h = plat.op_host_s("library", "matmul")
    assert h > kernel + spec.kernel_gap_s
    lib = _run(tmp_path, [MID] * n, "library", preset)
    assert lib.totals["latency_s"] == pytest.approx(n * h + spec.kernel_launch_s + kernel,
                                                    rel=1e-9)
    # a captured graph is issued once and is ahead: the kernels at kernel + gap each
    graph = _run(tmp_path, [MID] * n, "graph", preset)
    assert graph.totals["latency_s"] == pytest.approx(
        plat.graph_launch_s + spec.kernel_launch_s + n * kernel + (n - 1) * spec.kernel_gap_s,
        rel=1e-9)
    hidden = [r["launch_hidden_s"] for r in graph.rows]
    assert hidden[0] == 0.0
    assert hidden[1:] == pytest.approx([spec.kernel_launch_s - spec.kernel_gap_s] * (n - 1),
                                       rel=1e-9)


@pytest.mark.parametrize("preset,platform,unit", DEVICES)
@pytest.mark.parametrize("op", [SMALL, MID], ids=["small", "mid"])
def test_a_captured_graph_is_never_slower_than_library_calls(tmp_path, preset, platform,
                                                             unit, op):
    lat = {rt: _run(tmp_path, [op] * 30, rt, preset).totals["latency_s"]
           for rt in ("eager", "library", "fused", "graph")}
    assert lat["graph"] < lat["library"] <= lat["eager"]
    assert lat["fused"] <= lat["library"]


def test_a_faster_host_is_never_slower():
    """On random lanes, with launches that hide behind the op before: issuing every op
    sooner (each host time scaled down) never ends the run later, nor does a launch
    that hides more."""
    rng = random.Random(29)
    pick = [0.0, 0.4e-6, 2.9e-6, 3.8e-6, 7.6e-6, 2e-5, 3e-4]
    for _ in range(300):
        n = rng.randint(1, 25)
        host = [rng.choice(pick) * rng.random() for _ in range(n)]
        dev = [rng.choice(pick) * rng.random() + 1e-9 for _ in range(n)]
        hide = [min(rng.choice([0.0, 0.5e-6, 2.4e-6]), d) for d in dev]
        names = [f"op{i}" for i in range(n)]
        base = schedule(names, host, dev, queued_launch_s=hide).latency_s
        scale = rng.random()
        faster = schedule(names, [h * scale for h in host], dev, queued_launch_s=hide)
        assert faster.latency_s <= base * (1 + 1e-12)
        more = [min(x * 1.5, d) for x, d in zip(hide, dev)]
        assert schedule(names, host, dev, queued_launch_s=more).latency_s <= base * (1 + 1e-12)


@pytest.mark.parametrize("preset,field", [
    ("volta-v100-sxm2", "kernel_launch_s"), ("volta-v100-sxm2", "kernel_gap_s"),
    ("ascend-910b", "kernel_launch_s"), ("ascend-910b", "kernel_gap_s"),
    ("roofline-v100", "kernel_launch_s")])
def test_launch_costs_are_never_negative(preset, field):
    with pytest.raises(InputError, match=field):
        resolve(preset, {field: "-1 us"})
    # a gap longer than the launch hides nothing, and never adds time
    spec = resolve(preset, {"kernel_gap_s": "5 us"} if field == "kernel_gap_s" else {}).spec
    assert resolve(preset).target.queued_launch_s(spec) >= 0.0


@pytest.mark.parametrize("preset", ["volta-v100-sxm2", "ascend-910b"])
def test_the_queued_launch_is_the_launch_less_the_gap(preset):
    r = resolve(preset)
    spec = r.spec
    assert 0.0 < spec.kernel_gap_s < spec.kernel_launch_s
    assert r.target.queued_launch_s(spec) == pytest.approx(
        spec.kernel_launch_s - spec.kernel_gap_s, rel=1e-12)
    wide = resolve(preset, {"kernel_gap_s": spec.kernel_launch_s * 2}).spec
    assert r.target.queued_launch_s(wide) == 0.0


def test_the_kernels_of_one_ascend_op_queue_their_launches(tmp_path):
    """Standard (unfused) attention on the 910B runs as several kernels (QK, scale and
    mask, softmax, PV): each later one was enqueued behind the one before, so its launch
    runs on the launch lane while that kernel runs, and it starts kernel_gap_s after it,
    not a whole launch after it (as the V100's kernels of one op do)."""
    op = {"kind": "attention", "heads": 8, "head_dim": 128, "q_len": 1024, "kv_len": 1024,
          "dtype": "fp16"}
    wl = dump_yaml(tmp_path / "att.yaml", {"name": "att", "ops": [op],
                                           "tiling": {"attention": "standard"}})
    rep = hwsim.simulate(wl, "ascend-910b")
    spec = rep.target.spec
    lane = rep.lanes[0]
    launch = sorted((s, e, label) for u, label, s, e in lane if u == "launch")
    takes = [t for t in launch if not t[2].startswith("gap")]
    gaps = [t for t in launch if t[2].startswith("gap")]
    assert len(takes) >= 3 and len(gaps) == len(takes) - 1
    for s, e, _ in takes:
        assert e - s == pytest.approx(spec.kernel_launch_s, rel=1e-9)
    for s, e, _ in gaps:
        assert e - s == pytest.approx(spec.kernel_gap_s, rel=1e-9)
    # kernel k + 1's launch is taken in when kernel k starts (the end of the lane's task
    # before it: the first launch, or the gap that started kernel k), while kernel k
    # runs; its gap follows the launch and kernel k's end
    starts = [takes[0][1]] + [g[1] for g in gaps]  # when each kernel starts
    for k, (s, e, label) in enumerate(takes[1:]):
        assert s == pytest.approx(starts[k], abs=1e-12)
        assert gaps[k][0] >= e - 1e-12 and gaps[k][2] == f"gap before {label[7:]}"
    # the op is shorter than with its launches paid one after another
    serial = hwsim.simulate(wl, "ascend-910b", sets=["target.kernel_gap_s=2.9 us"])
    saved = serial.totals["latency_s"] - rep.totals["latency_s"]
    assert saved > 0.0


def test_the_roofline_is_a_bound_unless_its_spec_names_a_host(tmp_path):
    """The roofline has no host by default: an ideal host that enqueued every op at
    t = 0, whatever the workload's runtime, so the first op pays the device's whole
    launch and each later one only kernel_gap_s (its launch taken in behind the op
    before, as the V100 takes a queued launch in): below every host's schedule of the
    same ops. With target.host=cuda the runtime's host lane issues its ops as on the
    V100 target, and the hosted bound stays below the V100 target behind the same host."""
    ops = [SMALL] * 10
    bound = {rt: _run(tmp_path, ops, rt, "roofline-v100").totals["latency_s"]
             for rt in ("library", "eager", "graph")}
    assert bound["library"] == bound["eager"] == bound["graph"]
    spec = resolve("roofline-v100").spec
    one = _run(tmp_path, [SMALL], "library", "roofline-v100").totals["latency_s"]
    assert one == pytest.approx(spec.kernel_launch_s, rel=1e-3)  # a launch-bound op
    hidden = spec.kernel_launch_s - spec.kernel_gap_s
    assert spec.kernel_gap_s == pytest.approx(0.5e-6)
    # one whole launch, then each op a gap after the one before (nine launches hidden)
    assert bound["library"] == pytest.approx(10 * one - 9 * hidden, rel=1e-9)
    hosted = {rt: _run(tmp_path, ops, rt, "roofline-v100", sets=["target.host=cuda"])
              for rt in ("library", "eager", "graph")}
    cuda = PLATFORMS["cuda"]
    # eager: the host's 14 us a GEMM is the pace, the device idles between ops (and
    # pays each launch whole: nothing queued to take it in behind)
    eager = hosted["eager"]
    assert eager.totals["latency_s"] == pytest.approx(
        10 * cuda.op_host_s("eager", "matmul") + one, rel=1e-9)
    assert eager.host_wait_s > 0 and len(eager.host_lane) == 10
    # library: cuBLAS's 8.5 us call is slower than a small op on the roofline (its 2.9
    # us launch): the host's pace
    assert hosted["library"].totals["latency_s"] == pytest.approx(
        10 * cuda.op_host_s("library", "matmul") + one, rel=1e-9)
    # a captured graph: one graph launch, then the ops as the ideal host has them
    assert hosted["graph"].totals["latency_s"] == pytest.approx(
        cuda.graph_launch_s + bound["graph"], rel=1e-9)
    for rep in (hosted["graph"], _run(tmp_path, ops, "graph", "roofline-v100")):
        assert sum(r["launch_hidden_s"] for r in rep.rows) == pytest.approx(
            9 * hidden, rel=1e-9)
    assert hosted["graph"].totals["latency_s"] < hosted["library"].totals["latency_s"]
    for rt in ("library", "eager", "graph"):
        # the device-alone bound is below every hosted run, and the hosted bound below
        # the V100 target behind the same host
        assert hosted[rt].totals["latency_s"] >= bound[rt]
        v100 = _run(tmp_path, ops, rt, "volta-v100-sxm2")
        assert hosted[rt].totals["latency_s"] <= v100.totals["latency_s"]
    with pytest.raises(InputError, match="host"):
        resolve("roofline-v100", {"host": "tpu"})
