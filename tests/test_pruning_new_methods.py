"""Methods whose machinery is new to the library (issue 19 point 2): token merging (ToMe)
and the vision encoder's [CLS] attention ranking visual tokens (FasterVLM).

Each method's docs state the complexity of what it costs: here the token count is
doubled and the machinery's FLOPs and elements must grow as stated; the shipped
workload of each runs on every target with its machinery costing time and energy;
the pruned model runs fewer FLOPs than the dense one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import hwsim
from hwsim.errors import InputError
from hwsim.pruning import apply
from hwsim.targets import registry, resolve
from hwsim.workload import build_graph, load_workload, workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
TARGETS = sorted(registry())


def _graph(base: dict, step: dict):
    wl = workload_from_dict({**base, "pruning": [step]})
    g = apply(build_graph(wl), wl.pruning, wl.source)
    assert g.verify() == []
    return g


def _ops(g, method, prefix=""):
    return [op for op in g.ops if op.attrs.get("pruning") == method
            and op.name.startswith(prefix)]


def _flops(g, machinery=None):
    return sum(g.op_flops(op) for op in g.ops
               if machinery is None or ("pruning" in op.attrs) == machinery)


# ---------------------------------------------------------------------------- ToMe
def test_tome_deit_small_r13_merges_13_tokens_per_layer_and_saves_flops():
    wl = load_workload(ROOT / "workloads" / "deit-small-tome.yaml")
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"] == [197 - 13 * layer for layer in range(12)]
    assert rec["merging_layers"] == list(range(1, 12))
    # 11 merges, each 14 ops; proportional attention (2 ops) in the 11 layers after
    assert len([op for op in _ops(g, "tome") if op.kind != "view"
                and not op.name.endswith("token_select")]) == 11 * 14 + 11 * 2
    ratio = _flops(g) / _flops(dense)
    # ToMe reports 2.7 of 4.6 GFLOPs (0.587) with the merge inside each layer; hwsim
    # merges at layer boundaries (each merging layer's MLP on r more tokens): 0.629
    assert 0.62 < ratio < 0.64
    assert 0 < _flops(g, machinery=True) < 0.01 * _flops(g)


def test_tome_costs_scale_as_documented_with_n_doubled():
    cost = {}
    for n in (97, 193):  # DeiT-S keys: 6 heads of 64
        g = _graph({"model": "deit-small", "seq_len": n}, {"method": "tome", "r": 8,
                                                            "layers": [6]})
        na, nb = (n + 1) // 2, n // 2
        (sim,) = _ops(g, "tome", "tome.similarity")
        assert (sim.attrs["m"], sim.attrs["n"], sim.attrs["k"]) == (na, nb, 64)
        (sort,) = _ops(g, "tome", "tome.sort_edges")
        assert (sort.attrs["n"], sort.attrs["k"]) == (na, na)  # the released argsort
        (scatter,) = _ops(g, "tome", "tome.merge_scatter_add")
        assert scatter.attrs["elements"] == 8 * 384  # r x D
        prop = _ops(g, "tome", "tome.proportional_attention")
        assert len(prop) == 6  # layers 6..11 after the merge
        n_l = n - 8
        assert all(op.attrs["elements"] == 6 * n_l * n_l for op in prop)
        assert g.header["pruning"][0]["tokens_per_layer"][5:8] == [n, n_l, n_l]
        cost[n] = (g.op_flops(sim), sum(g.op_flops(op) for op in prop),
                   scatter.attrs["elements"], g.op_flops(sort))
    assert cost[193][0] / cost[97][0] == pytest.approx(97 * 96 / (49 * 48))  # ~n² d_h / 2
    assert cost[193][1] / cost[97][1] == pytest.approx((185 / 89) ** 2)  # h n'² per layer
    assert cost[193][2] == cost[97][2]  # the scatter-add is r x D whatever n
    assert cost[193][3] / cost[97][3] == pytest.approx(97 / 49)  # the sort: n / 2


def test_tome_caps_r_at_half_the_unprotected_tokens_and_proportional_attention_optional():
    g = _graph({"model": "deit-small", "seq_len": 41},
               {"method": "tome", "r": 100, "layers": [1], "proportional_attention": False})
    rec = g.header["pruning"][0]
    assert rec["merged_per_layer"][1] == 20  # (41 - 1 protected) // 2
    assert rec["tokens_per_layer"][1] == 21
    assert not _ops(g, "tome", "tome.proportional_attention")
    g2 = _graph({"model": "deit-small", "seq_len": 41},
                {"method": "tome", "r": 100, "layers": [1], "protected": 0})
    assert g2.header["pruning"][0]["merged_per_layer"][1] == 20  # 41 // 2


@pytest.mark.parametrize("step, match", [
    ({"method": "tome", "r": 0}, r"pruning\.0\.r: must be a positive integer"),
    ({"method": "tome", "r": 8, "protected": -1}, r"pruning\.0\.protected: must be an integer"),
    ({"method": "tome", "r": 8, "proportional_attention": "yes"},
     r"pruning\.0\.proportional_attention: expected true or false"),
    ({"method": "tome"}, r"pruning\.0\.r: missing"),
])
def test_tome_bad_parameters_are_errors_at_load(step, match):
    with pytest.raises(InputError, match=match):
        workload_from_dict({"model": "deit-small", "seq_len": 197, "pruning": [step]})


def test_tome_refuses_layer_0_and_a_decode_step():
    with pytest.raises(InputError, match=r"pruning\.0\.layers: .*layer 0 runs on every token"):
        _graph({"model": "deit-small", "seq_len": 197}, {"method": "tome", "r": 8,
                                                          "layers": [0, 3]})
    with pytest.raises(InputError, match="ToMe merges a ViT's tokens"):
        _graph({"model": "gpt2", "phase": "decode", "seq_len": 1, "kv_len": 255},
               {"method": "tome", "r": 8})


# ---------------------------------------------------------------------------- every target
SHIPPED = {
    "deit-small-tome": ("tome", ("tome.similarity", "tome.merge_scatter_add",
                                 "tome.proportional_attention")),
}


@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_workload_runs_on_every_target_and_its_machinery_costs(name, target_name):
    method, names = SHIPPED[name]
    path = ROOT / "workloads" / f"{name}.yaml"
    r = hwsim.simulate(path, resolve(target_name), fidelity="analytical", baseline=True)
    overhead = r.pruning["overhead"]
    assert set(overhead["by_method"]) == {method}
    assert overhead["latency_s"] > 0 and overhead["energy_j"] > 0
    ops = r.ops
    for op_name in names:
        rows = ops[ops["name"] == op_name]
        assert len(rows) > 0, (target_name, op_name)
        assert (rows["latency_s"] > 0).all(), (target_name, op_name)
    assert r.totals["flops"] < r.baseline.totals["flops"]
