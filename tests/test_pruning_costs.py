"""The released algorithms' costs: DivPrune as its code runs, Zero-TPrune's two stages.

Each method's docs state the complexity of what it costs; here the token count n is
doubled at a fixed hidden size and the machinery's FLOPs and bytes must grow as
stated, and the machinery must appear and cost time and energy on every target.
"""

from __future__ import annotations

import pytest
from pruning_util import method_ops, pruned

import hwsim
from hwsim.targets import registry, resolve
from hwsim.workload import workload_from_dict

TARGETS = sorted(registry())


def _graph(base: dict, step: dict):
    return pruned(base, step)[1]


_ops = method_ops


def _minilm(n: int) -> dict:
    """MiniLM-L6 (hidden 384) with a visual segment of n tokens between 16 text tokens."""
    return {"model": "minilm-l6", "seq_len": n + 32,
            "segments": {"text": [0, 16], "visual": [16, 16 + n], "question": [16 + n, n + 32]}}


def test_divprune_released_similarity_grows_4x_and_greedy_k2n_with_n_doubled():
    step = {"method": "divprune", "keep": 0.25, "segment": "visual"}
    cost = {}
    for n in (128, 256):
        g = _graph(_minilm(n), step)
        k = round(0.25 * n)
        (sim,) = _ops(g, "divprune", "divprune.similarity")
        assert (sim.attrs["m"], sim.attrs["n"], sim.attrs["k"]) == (n, n, 384)
        rows = _ops(g, "divprune", "divprune.picked_rows")
        minima = _ops(g, "divprune", "divprune.min_over_picked")
        assert len(rows) == len(minima) == k - 1  # a pick per kept token after the first
        gathered = sum(op.attrs["elements"] for op in rows)
        assert gathered == n * k * (k - 1) // 2  # sum over picks of i x n
        assert sum(op.attrs["elements"] for op in minima) == gathered
        work = [op for op in _ops(g, "divprune") if op.kind != "view"
                and not op.name.endswith("token_select")]
        assert len(work) == 3 * k + 3  # as the docstring counts
        (dist,) = _ops(g, "divprune", "divprune.distance")
        cost[n] = (g.op_flops(sim), g.op_write_bytes(sim) + g.op_read_bytes(dist), gathered,
                   sum(g.op_read_bytes(op) for op in minima))
    assert cost[256][0] / cost[128][0] == 4  # similarity FLOPs: O(n² d), n doubled at fixed d
    assert cost[256][1] / cost[128][1] == 4  # the n x n matrix's bytes
    # the greedy picks: O(k² n) with k = n / 4, k(k-1)/2 · n exactly: 64·63·256 / 32·31·128
    assert cost[256][2] / cost[128][2] == pytest.approx(64 * 63 * 256 / (32 * 31 * 128))
    assert 8 < cost[256][3] / cost[128][3] < 8.3  # and the bytes the minima read


def test_divprune_incremental_grows_with_n_k_d():
    flops = {}
    for n in (128, 256):
        g = _graph(_minilm(n), {"method": "divprune", "keep": 0.25, "segment": "visual",
                                "algorithm": "incremental"})
        steps = _ops(g, "divprune", "divprune.distances")
        assert len(steps) == round(0.25 * n)
        flops[n] = sum(g.op_flops(op) for op in steps)
        assert not _ops(g, "divprune", "divprune.similarity")  # no n x n matrix
    assert flops[256] / flops[128] == 4  # n k d with k = n / 4


def test_divprune_bad_algorithm_is_an_error_at_load():
    from hwsim.errors import InputError

    with pytest.raises(InputError, match=r"pruning\.0\.algorithm.*released, incremental"):
        workload_from_dict({**_minilm(128), "pruning": [
            {"method": "divprune", "keep": 0.5, "segment": "visual", "algorithm": "fast"}]})


def test_zero_tprune_similarity_stage_sized_from_the_survivors_and_quadratic_in_n():
    out = {}
    for n in (96, 192):  # DeiT-S (hidden 384) at two token counts
        g = _graph({"model": "deit-small", "seq_len": n},
                   {"method": "zero-tprune", "keep": 0.5, "layers": [6], "iterations": 4})
        rec = g.header["pruning"][0]
        n_l = n // 2
        r = round(0.5 * (n - n_l))
        assert rec["pruned_by_similarity"] == [r] and rec["tokens_per_layer"][6] == n_l
        (itopk,) = _ops(g, "zero-tprune", "zero-tprune.topk")
        assert (itopk.attrs["n"], itopk.attrs["k"]) == (n, n_l + r)  # the I-stage keeps n'+r
        (sim,) = _ops(g, "zero-tprune", "zero-tprune.similarity")
        m = n_l + r
        assert (sim.attrs["m"], sim.attrs["n"], sim.attrs["k"]) == ((m + 1) // 2, m // 2, 384)
        (stopk,) = _ops(g, "zero-tprune", "zero-tprune.similar_topk")
        assert (stopk.attrs["n"], stopk.attrs["k"]) == ((m + 1) // 2, r)
        pagerank = _ops(g, "zero-tprune", "zero-tprune.pagerank_step")
        out[n] = (g.op_flops(sim), sum(g.op_flops(op) for op in pagerank))
    assert out[192][0] / out[96][0] == 4  # S-stage: O(n² D / 4)
    assert out[192][1] / out[96][1] == 4  # I-stage: t vector-matrix products, O(t n²)
    off = _graph({"model": "deit-small", "seq_len": 96},
                 {"method": "zero-tprune", "keep": 0.5, "layers": [6], "iterations": 4,
                  "similarity_share": 0})
    assert not _ops(off, "zero-tprune", "zero-tprune.similarity")
    assert off.header["pruning"][0]["tokens_per_layer"][6] == 48  # same survivors


@pytest.mark.parametrize("target_name", TARGETS)
def test_the_released_machinery_costs_time_and_energy_on_every_target(target_name):
    target = resolve(target_name)
    cases = [
        (_minilm(128), {"method": "divprune", "keep": 0.25, "segment": "visual"},
         ("divprune.similarity", "divprune.picked_rows", "divprune.min_over_picked")),
        ({"model": "deit-small", "seq_len": 197, "batch": 8},
         {"method": "zero-tprune", "keep": 0.72, "layers": [3, 6, 9], "iterations": 5},
         ("zero-tprune.similarity", "zero-tprune.most_similar", "zero-tprune.similar_topk")),
    ]
    for base, step, names in cases:
        wl = workload_from_dict({**base, "pruning": [step]})
        try:
            r = hwsim.simulate(wl, target, fidelity="analytical")
        except hwsim.errors.UnsupportedOpError as e:  # pragma: no cover - dtype support
            assert "dtype" in str(e)
            r = hwsim.simulate(workload_from_dict({**base, "dtype": "fp32",
                                                   "pruning": [step]}),
                               target, fidelity="analytical")
        overhead = r.pruning["overhead"]
        assert overhead["latency_s"] > 0 and overhead["energy_j"] > 0
        ops = r.ops
        for name in names:
            rows = ops[ops["name"] == name]
            assert len(rows) > 0, (target_name, name)
            assert (rows["latency_s"] > 0).all(), (target_name, name)
