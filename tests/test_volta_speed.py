"""The Volta target's shortcuts for speed give what the plain computations give, to the
last bit: the kernels' HBM and L2 totals summed alone, a uniform grid's SM groups
known without looking, the pipe constants kept across kernels of one shape and other
grids, a GEMM tile's bound terms kept across products, and an op's analytical sums
reused for another op whose kernels differ only in their names (issue 14)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from hwsim.accelerators.volta import TARGET, gemm
from hwsim.accelerators.volta import gpu as gpu_mod
from hwsim.accelerators.volta.gpu import (
    _FLOATS,
    Builder,
    Gpu,
    Kernel,
    KernelReport,
    Work,
    _fields,
    _pipes_bound,
    plan_groups,
    uniform_groups,
)
from hwsim.targets import resolve
from hwsim.workload import build_graph, workload_from_dict

SPEC = resolve("volta").spec


def _graph(ops, **extra):
    wl = workload_from_dict({"name": "t", "ops": ops, **extra}, "<test>")
    return wl, build_graph(wl)


def _kernels(ops):
    wl, g = _graph(ops)
    return [k for op in g.ops if op.kind != "view"
            for k in TARGET.kernels_of(op, g, SPEC, wl.tiling)]


OPS = [
    {"kind": "attention", "heads": 32, "head_dim": 128, "q_len": 2048, "kv_len": 2048,
     "causal": True},  # a thousand classes, a work shared by every head's tile
    {"kind": "attention", "heads": 12, "head_dim": 64, "q_len": 200, "kv_len": 200},
    {"kind": "attention", "heads": 32, "kv_heads": 8, "head_dim": 128, "q_len": 1,
     "kv_len": 5000},  # decode: split-KV and its combine
    {"kind": "matmul", "m": 333, "n": 4096, "k": 4096, "dtype": "fp16"},
    {"kind": "matmul", "m": 8, "n": 11008, "k": 4096, "dtype": "fp32"},
    {"kind": "softmax", "rows": 4096, "cols": 777, "dtype": "fp16"},
]


@pytest.mark.parametrize("arrays", [False, True])
def test_traffic_is_totals_hbm_and_l2_bytes(arrays, monkeypatch):
    """Kernel.traffic sums only the HBM and L2 bytes, as total() sums them: the same
    floats (repr), on one-class grids and on a causal attention's thousand classes,
    on the loop path and on numpy's."""
    monkeypatch.setattr(gpu_mod, "arrays", lambda n: arrays)
    ks = _kernels(OPS)
    assert any(len(k.blocks) > 256 for k in ks) and any(len(k.blocks) == 1 for k in ks)
    for k in ks:
        hbm, l2 = k.traffic()
        k.__dict__.pop("_total", None)
        t = k.total()
        assert (repr(hbm), repr(l2)) == (repr(t.hbm_bytes), repr(t.l2_bytes)), k.name
        assert GPU.traffic_floor(hbm, l2) == GPU.kernel_floor(t)


GPU = Gpu(SPEC)


def test_uniform_groups_are_what_sm_groups_finds():
    """A uniform grid's SM groups (uniform_groups, from its block count alone) are the
    groups Builder._sm_groups finds in its plan, for grids below, at and above the SMs
    and occupancies of one to eight blocks."""
    bld = Builder(GPU, lambda k, w: {}, "t")
    w = Work(tensor_flops=1e6, l2_bytes=3e4, hbm_read=1e4, hbm_write=5e3)
    for count in (1, 7, 79, 80, 81, 160, 161, 1000, 4096, 12345):
        for per in (1, 2, 3, 8):
            k = Kernel("k", "t", 256, 32, 0, [(count, w)], tensor=False)
            assert uniform_groups(count, SPEC.sms) == bld._sm_groups(plan_groups(GPU, k, per))


def test_pipe_constants_kept_across_grids_give_the_formula():
    """The pipe constants are kept by a kernel's shape without its grid (the loaded
    latencies, which depend on the grid, worked out for each kernel): kernels of one
    shape and different grids, asked in turn, each give Gpu._terms' seconds and bound."""
    gpu = Gpu(SPEC)
    rng = random.Random(3)
    works = [Work(*(rng.random() * 10 ** rng.randint(3, 7) * (rng.random() < .8)
                    for _ in range(9))) for _ in range(20)]
    for grid in (1, 50, 80, 81, 333, 4000, 1, 333):  # (again: the kept ones)
        k = Kernel("k", "64x64", 128, 64, 16384, [(grid, Work())], serial_operands=True,
                   inflight_bytes_per_thread=32.0)
        for w in works:
            for n in (1, 2, 3):
                x = gpu._terms(k, _fields(w), n, _FLOATS)
                assert gpu._pipes_of(k, _fields(w), n) == (x["t"], _pipes_bound(x))


def test_tile_bound_terms_kept_across_products_give_the_fresh_bounds():
    """A GEMM tile's bound terms are kept by tile, split, K, widths and type: each
    configuration's lower bound, asked after many other products', is the one a GPU
    with nothing kept gives, to the last bit."""
    rng = random.Random(5)
    products = []
    for _ in range(60):
        dt = rng.choice(["fp16", "fp16", "fp32", "int8", "fp64"])
        products.append(gemm.Gemm(rng.choice([1, 12]), rng.choice([8, 128, 333, 4096]),
                                  rng.choice([64, 768, 4096, 11008]),
                                  rng.choice([64, 768, 3072, 4096]), dt, dt,
                                  b_dtype=rng.choice(["", "int8"]) if dt == "fp16" else ""))
    warm = Gpu(SPEC)
    for g in products:
        for tile, split in gemm.configs(warm, g):
            got = gemm.lower_bound(warm, g, tile, split, warm.dram_latency_s)
            fresh = Gpu(SPEC)
            assert repr(got) == repr(gemm.lower_bound(fresh, g, tile, split,
                                                      fresh.dram_latency_s))


def test_an_op_with_the_same_kernels_reuses_the_sums_under_its_own_names(monkeypatch):
    """Two ops whose kernels differ only in their names (here two projections of one
    shape): the second op's analytical summary is the first's sums, none rebuilt, and
    equal to its own fresh build to the last bit; its kernel reports carry its names."""
    ops = [{"kind": "matmul", "name": "q_proj", "m": 777, "n": 4096, "k": 4096,
            "dtype": "fp16"},
           {"kind": "matmul", "name": "o_proj", "m": 777, "n": 4096, "k": 4096,
            "dtype": "fp16"}]
    wl, g = _graph(ops)
    q, o = g.ops
    gpu = TARGET.gpu(SPEC)
    gpu.__dict__.pop("_summed", None)
    TARGET._built.clear()
    TARGET.lower_summary(q, g, SPEC, wl.tiling)
    built = []
    real = Builder.kernel

    def counted(self, k):
        built.append(k.name)
        return real(self, k)

    monkeypatch.setattr(Builder, "kernel", counted)
    got = TARGET.lower_summary(o, g, SPEC, wl.tiling)
    reports = TARGET.kernels(o, g, SPEC, wl.tiling)
    assert built == []  # (the sums of q_proj's build)
    assert all(r["name"].startswith("o_proj:") for r in reports)
    gpu.__dict__.pop("_summed", None)
    TARGET._built.clear()
    want = TARGET.lower_summary(o, g, SPEC, wl.tiling)
    assert built and got == want
    assert repr(got[0].analytical_latency_s) == repr(want[0].analytical_latency_s)
    assert reports == TARGET.kernels(o, g, SPEC, wl.tiling)


def test_a_renamed_kernel_report_is_the_replaced_one():
    """``KernelReport.renamed`` names every field: what ``dataclasses.replace`` makes,
    field for field (a field added to the report and not to ``renamed`` fails here)."""
    rep = KernelReport("a", 7, "128x128x32", 256, 96, 49152, 2, "smem", 1.25, "compute",
                       3.5e-6, "split-K 2", {"note": 1})
    got = rep.renamed("b", "its detail", {"other": 2})
    assert vars(got) == vars(replace(rep, name="b", detail="its detail",
                                     notes={"other": 2}))
    assert all(v != KernelReport.__dataclass_fields__[f].default for f, v in vars(rep).items())


def test_a_gemm_pick_kept_builds_what_a_fresh_search_picks():
    """A GEMM's picked configuration is kept on the GPU by the product without its
    name: asked again (under another name too) after many other products, the kernels
    are the ones a GPU with nothing kept searches out, to the last bit; tiles, split-K
    and the GEMV kernels alike."""
    rng = random.Random(14)
    products = []
    for _ in range(40):
        dt = rng.choice(["fp16", "fp16", "fp32", "int8"])
        products.append(gemm.Gemm(rng.choice([1, 12]), rng.choice([1, 8, 128, 333, 4096]),
                                  rng.choice([1, 64, 768, 4096]),
                                  rng.choice([64, 768, 3072, 11008]), dt, dt,
                                  a_onchip=rng.random() < 0.3, out_onchip=rng.random() < 0.3,
                                  name=rng.choice(["q", "k"])))
    warm = Gpu(SPEC)
    for g in products:
        gemm.kernels(warm, g)
    assert len(warm.__dict__["_gemm_picks"]) == len({replace(g, name="") for g in products})
    searched = []
    real = gemm._search
    for g in products + [replace(g, name="other") for g in products]:
        gemm._search = lambda *a: searched.append(1) or real(*a)  # noqa: E731
        try:
            got = gemm.kernels(warm, g)
        finally:
            gemm._search = real
        want = gemm.kernels(Gpu(SPEC), g)
        assert [repr(k) for k in got] == [repr(k) for k in want]
        assert all(k.name.startswith(f"{g.name}:") for k in got)
    assert searched == []  # (every one built from its kept pick)


_SWEEP = """
import sys, hwsim
for n in sys.argv[1:]:
    r = hwsim.simulate('workloads/bert-base.yaml', 'volta', sets=['seq_len=' + n],
                       fidelity='analytical')
    print(repr(r.rows), repr(r.totals))
"""


def test_points_of_a_sweep_in_either_order_match_fresh_runs():
    """What the Volta target keeps between calls (GEMM picks, pipe constants, analytical
    sums) leaks nothing between a sweep's points: two BERT points run in either order
    in one process give the reports each gives in a fresh process."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1]

    def run(*lens):
        out = subprocess.run([sys.executable, "-c", _SWEEP, *map(str, lens)], cwd=root,
                             capture_output=True, text=True, check=True).stdout
        return out.splitlines()

    fresh_a, fresh_b = run(136)[0], run(352)[0]
    assert fresh_a != fresh_b
    assert run(136, 352) == [fresh_a, fresh_b]
    assert run(352, 136) == [fresh_b, fresh_a]


def test_split_kv_candidates_skipped_by_their_bound_leave_the_exhaustive_pick():
    """The fused attention estimates a split-KV candidate only while its bound could
    beat the best so far: on BERT-like prompts, decode steps, GQA and causal shapes,
    every bound is at most its candidate's estimate, the pick is the one estimating
    every candidate in order gives (the same kernels, to the last bit), and some
    candidates are skipped."""
    from hwsim.accelerators.volta import attention

    rng = random.Random(7)
    ops = [{"kind": "attention", "heads": 12, "head_dim": 64, "q_len": n, "kv_len": n}
           for n in (128, 136, 160, 224, 288, 352, 480)]
    for _ in range(12):
        q = rng.choice([1, 1, 16, 77, 128, 300])
        ops.append({"kind": "attention", "heads": rng.choice([8, 12, 32]),
                    "kv_heads": rng.choice([0, 8]), "head_dim": rng.choice([64, 128]),
                    "q_len": q, "kv_len": q + rng.choice([0, 100, 1000, 8000]),
                    "causal": rng.random() < 0.5})
    estimated = skipped = 0
    for spec in ops:
        spec = {k: v for k, v in spec.items() if v}
        if spec["heads"] % spec.get("kv_heads", spec["heads"]):
            spec.pop("kv_heads")
        wl, g = _graph([spec])
        op = next(o for o in g.ops if o.kind == "attention")
        gpu = Gpu(SPEC)
        s = attention.Shape.of(op, g)
        strategy = TARGET._strategy(op, wl.tiling)
        geo = attention._geometry(gpu, s, strategy, 0, 0)
        cands = [attention._fused_kernels(gpu, s, geo, split, "a", strategy, 0)
                 for split in geo["splits"]]
        for ks in cands:
            assert attention._split_bound(gpu, ks) <= gpu_mod.estimate(gpu, ks)
        want = attention._fused_exhaustive(gpu, cands)
        calls = []
        real = attention.estimate
        attention.estimate = lambda gpu, ks, calls=calls, real=real: (  # noqa: E731
            calls.append(1) or real(gpu, ks))
        try:
            got = attention.fused(Gpu(SPEC), s, "a", strategy, 0, 0)
        finally:
            attention.estimate = real
        assert [repr(k) for k in got] == [repr(k) for k in want]
        if len(cands) > 1:
            estimated += len(calls)
            skipped += len(cands) - len(calls)
    assert estimated and skipped
