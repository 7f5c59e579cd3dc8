"""Sweep files: axes, modes, constraints, validation, point identity.

These run no simulation except where a point's identity needs the base workload
loaded; everything here takes milliseconds.
"""

from __future__ import annotations

import pytest
from conftest import ROOT, dump_yaml

from hwsim.errors import InputError
from hwsim.sweep import ConstraintError, load_sweep, points, prepare
from hwsim.sweep.constraints import parse

BERT = str(ROOT / "workloads" / "bert-base.yaml")


def spec_of(**kw):
    data = {"workload": BERT, "target": "roofline", **kw}
    return load_sweep(data)


# ---------------------------------------------------------------- axes
def test_list_and_stepped_ranges():
    s = spec_of(axes={"seq_len": [128, 256],
                      "target.dram_bw_bytes_per_s": {"range": [1e11, 1e12], "steps": 2},
                      "pruning_keep_like": {"range": [0.1, 1.0], "steps": 10},
                      "batch": {"range": [1, 8], "step": 3}})
    ax = {a.name: a for a in s.axes}
    assert ax["seq_len"].values == (128, 256) and ax["seq_len"].dtype == "int"
    assert ax["target.dram_bw_bytes_per_s"].values == (1e11, 1e12)
    # floating-point dust is cleaned so equal points hash equal: 0.3, not 0.30000000000000004
    assert ax["pruning_keep_like"].values == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert ax["batch"].values == (1, 4, 7) and ax["batch"].dtype == "int"


def test_integer_log_range_rounds_and_drops_duplicates():
    s = spec_of(axes={"seq_len": {"range": [64, 4096], "steps": 7, "log": True}})
    assert s.axes[0].values == (64, 128, 256, 512, 1024, 2048, 4096)
    s = spec_of(axes={"seq_len": {"range": [1, 3], "steps": 5}})
    assert s.axes[0].values == (1, 2, 3)  # 1, 1.5, 2, 2.5, 3 rounded, duplicates dropped
    s = spec_of(axes={"x": {"range": [1, 3], "steps": 3, "type": "float"}})
    assert s.axes[0].values == (1.0, 2.0, 3.0) and s.axes[0].dtype == "float"


def test_column_types_of_list_axes():
    s = spec_of(axes={"a": [1, 2], "b": [1, 2.5], "c": ["x", "y"], "d": [True, False],
                      "e": [{"method": "fastv"}, [1, 2]]})
    assert [a.dtype for a in s.axes] == ["int", "float", "str", "bool", "json"]


def test_grid_order_first_axis_slowest_and_constraints():
    s = spec_of(axes={"seq_len": [128, 256, 512], "batch": [1, 2, 4]},
                constraints=["seq_len * batch <= 512"])
    pts = points(s)
    assert pts == [{"seq_len": 128, "batch": 1}, {"seq_len": 128, "batch": 2},
                   {"seq_len": 128, "batch": 4}, {"seq_len": 256, "batch": 1},
                   {"seq_len": 256, "batch": 2}, {"seq_len": 512, "batch": 1}]


def test_random_and_lhs_are_reproducible_and_sized():
    axes = {"seq_len": {"range": [64, 512]}, "pruning_like": {"range": [0.1, 1.0]},
            "batch": [1, 2, 4]}
    for mode in ("random", "lhs"):
        a = points(spec_of(axes=axes, mode=mode, samples=40, seed=3))
        b = points(spec_of(axes=axes, mode=mode, samples=40, seed=3))
        c = points(spec_of(axes=axes, mode=mode, samples=40, seed=4))
        assert a == b and a != c and len(a) == 40
        assert all(64 <= p["seq_len"] <= 512 and isinstance(p["seq_len"], int) for p in a)
        assert all(0.1 <= p["pruning_like"] <= 1.0 for p in a)


@pytest.mark.parametrize(("samples", "dims", "seed"), [(20, 2, 1), (7, 5, 0), (64, 3, 12345),
                                                     (1, 1, 9)])
def test_lhs_stratifies_every_axis(samples, dims, seed):
    names = [f"u{i}" for i in range(dims)]
    s = spec_of(axes={n: {"range": [0.0, 1.0]} for n in names}, mode="lhs",
                samples=samples, seed=seed)
    pts = points(s)
    assert len(pts) == samples
    for name in names:
        strata = sorted(int(p[name] * samples) for p in pts)
        assert strata == list(range(samples))  # one point in each 1/samples of the range


def test_lhs_is_scipys_hypercube_seeded_by_the_sweep():
    """The points are SciPy's LatinHypercube drawn from PCG64(seed), axes in file order."""
    import numpy as np
    from scipy.stats import qmc

    s = spec_of(axes={"a": {"range": [0.0, 1.0]}, "b": {"range": [10.0, 20.0]}},
                mode="lhs", samples=12, seed=42)
    cube = qmc.LatinHypercube(d=2, rng=np.random.Generator(np.random.PCG64(42))).random(12)
    pts = points(s)
    assert [p["a"] for p in pts] == pytest.approx(cube[:, 0], rel=1e-11)  # 12 digits kept
    assert [p["b"] for p in pts] == pytest.approx(10 + 10 * cube[:, 1], rel=1e-11)


def test_random_mode_redraws_until_constraints_pass():
    s = spec_of(axes={"a": {"range": [0.0, 1.0]}, "b": {"range": [0.0, 1.0]}},
                mode="random", samples=30, constraints=["a < b"])
    pts = points(s)
    assert len(pts) == 30 and all(p["a"] < p["b"] for p in pts)


def test_log_continuous_range_is_log_uniform():
    s = spec_of(axes={"x": {"range": [1.0, 1e6], "log": True}}, mode="lhs", samples=60)
    xs = [p["x"] for p in points(s)]
    below_1e3 = sum(x < 1e3 for x in xs)
    assert below_1e3 == 30  # half the decades, half the points (stratified)


# ---------------------------------------------------------------- constraints
def test_constraint_grammar_names_and_aliases():
    names = ["pruning.0.keep", "target.topk_parallelism", "tiling.block_q", "tiling.block_kv"]
    c = parse("keep * topk_parallelism >= 1 and tiling.block_q <= block_kv", names)
    ok = {"pruning.0.keep": 0.5, "target.topk_parallelism": 4, "tiling.block_q": 64,
          "tiling.block_kv": 128}
    assert c(ok)
    assert not c({**ok, "tiling.block_q": 256})
    c = parse("method in ('fastv', 'topv') or max(a, b) ** 2 < 10 if a else not b",
              ["pruning.0.method", "a", "b"])
    assert c({"pruning.0.method": "fastv", "a": 0, "b": 0})


@pytest.mark.parametrize("text, needle", [
    ("__import__('os').system('true')", "call"),
    ("keep.__class__", "attribute"),
    ("[x for x in (1, 2)]", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("nope < 3", "unknown name 'nope'"),
    ("keep <", "not an expression"),
    ("open('f')", "call"),
])
def test_constraint_rejects_code(text, needle):
    with pytest.raises(ConstraintError, match=needle):
        parse(text, ["pruning.0.keep"])


def test_constraint_arithmetic_is_bounded():
    c = parse("10 ** keep > 1", ["keep"])
    with pytest.raises(ConstraintError, match="exponent"):
        c({"keep": 10 ** 6})
    c = parse("name * 1000000000 == 'x'", ["name"])
    with pytest.raises(ConstraintError, match="numbers"):
        c({"name": "ab"})


# ---------------------------------------------------------------- validation
def test_all_problems_in_one_error_naming_file_and_fields(tmp_path):
    path = dump_yaml(tmp_path / "bad.yaml", {
        "workload": "nowhere.yaml", "target": "roofline", "mode": "grdi", "seed": -1,
        "axes": {"seq_len": {"range": [512, 64], "steps": 3},
                 "batch": {"range": [1, 4]}},
        "constraints": ["seq_len.real > 1"], "extra": 1})
    with pytest.raises(InputError) as e:
        load_sweep(path)
    fields = [p.field for p in e.value.problems]
    assert fields == ["extra", "workload", "mode", "seed", "axes.seq_len.range", "axes.batch",
                      "constraints.0"]
    assert all(p.source == str(path) for p in e.value.problems)
    assert "attribute access (.real" in str(e.value)


def test_grid_range_needs_steps_and_random_needs_samples():
    with pytest.raises(InputError, match="axes.batch: a range needs steps"):
        spec_of(axes={"batch": {"range": [1, 4]}})
    with pytest.raises(InputError, match="samples: random mode needs samples"):
        spec_of(axes={"batch": [1, 2]}, mode="random")


def test_misspelt_axis_fails_once_at_prepare():
    with pytest.raises(InputError) as e:
        prepare(spec_of(axes={"seq_lenn": [1, 2], "target.dram_bw": [1e12]}))
    fields = {p.field for p in e.value.problems}
    assert fields == {"axes.seq_lenn", "axes.target.dram_bw"}
    assert "unknown" in str(e.value)


def test_unknown_target_in_target_axis():
    with pytest.raises(InputError, match="axes.target.*unknown target 'voltaa'"):
        prepare(spec_of(axes={"target": ["roofline", "voltaa"]}))


def test_relative_workload_found_beside_the_sweep_file(tmp_path):
    dump_yaml(tmp_path / "wl.yaml", {"ops": [{"kind": "matmul", "m": 8, "n": 8, "k": 8}]})
    path = dump_yaml(tmp_path / "s.yaml", {"workload": "wl.yaml", "axes": {"ops.0.m": [8, 16]}})
    spec = load_sweep(path)
    assert spec.workload == str(tmp_path / "wl.yaml")
    assert spec.name == "s"


# ---------------------------------------------------------------- identity
def test_point_ids_are_stable_and_depend_on_everything(tmp_path):
    wl = dump_yaml(tmp_path / "wl.yaml", {"ops": [{"kind": "matmul", "m": 8, "n": 8, "k": 8}]})
    data = {"workload": str(wl), "axes": {"ops.0.m": [8, 16]}}
    ids = [p.id for p in prepare(load_sweep(data))[1]]
    assert ids == [p.id for p in prepare(load_sweep(data))[1]]
    assert len(set(ids)) == 2
    assert ids != [p.id for p in prepare(load_sweep({**data, "fidelity": "event"}))[1]]
    assert ids != [p.id for p in prepare(load_sweep({**data, "target": "volta"}))[1]]
    assert ids != [p.id for p in prepare(load_sweep({**data, "set": {"ops.0.k": 16}}))[1]]
    dump_yaml(wl, {"ops": [{"kind": "matmul", "m": 8, "n": 8, "k": 32}]})  # edit the base
    assert ids[0] not in [p.id for p in prepare(load_sweep(data))[1]]
    # the same point reached by another axis order is the same point
    swapped = {"workload": str(wl), "axes": {"ops.0.n": [8], "ops.0.m": [8]}}
    again = {"workload": str(wl), "axes": {"ops.0.m": [8], "ops.0.n": [8]}}
    assert prepare(load_sweep(swapped))[1][0].id == prepare(load_sweep(again))[1][0].id


# ---------------------------------------------------------------- shipped examples
@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_example_sweeps_prepare(path, monkeypatch):
    import hwsim

    monkeypatch.chdir(ROOT)
    spec = load_sweep(path)
    needed = {spec.target} | {v for a in spec.axes if a.name == "target" for v in a.values}
    missing = sorted(t for t in needed if t not in hwsim.registry())
    if missing:
        pytest.skip(f"{path.name} needs target(s) not registered: {', '.join(missing)}")
    _, pts = prepare(spec)
    assert len(pts) >= 20 and len({p.id for p in pts}) == len(pts)


def test_constraints_that_reject_everything_are_an_error():
    with pytest.raises(InputError, match="constraints: no point of the grid"):
        points(spec_of(axes={"seq_len": [128, 256]}, constraints=["seq_len > 1000"]))
    with pytest.raises(InputError, match="constraints: no drawn point"):
        points(spec_of(axes={"x": {"range": [0.0, 1.0]}}, mode="random", samples=5,
                       constraints=["x > 2"]))


@pytest.mark.parametrize("extra, field", [
    ({"mode": "random", "samples": 10 ** 9, "axes": {"seq_len": {"range": [64, 512]}}},
     "samples"),
    ({"axes": {"seq_len": {"range": [64, 512], "steps": 10 ** 9}}}, "axes.seq_len.steps"),
    ({"axes": {"seq_len": {"range": [64, 4096], "steps": 2000},
               "batch": {"range": [1, 1000], "steps": 1000}}}, "axes"),
])
def test_sweeps_are_counted_before_anything_is_allocated(extra, field):
    """A billion samples or steps once allocated 16-24 GB; a sweep of more than a
    million points is refused when it is read, naming the field."""
    with pytest.raises(InputError) as e:
        load_sweep({"workload": str(ROOT / "workloads" / "bert-base.yaml"),
                    "target": "roofline", **extra})
    assert e.value.problems[0].field == field and "1,000,000" in str(e.value)
