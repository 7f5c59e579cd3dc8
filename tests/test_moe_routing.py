"""Routing: tokens per expert (balanced, Zipf-like skew, histograms) and its checks."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hwsim.errors import InputError
from hwsim.moe import expert_tokens, shares_for
from hwsim.workload import workload_from_dict


def test_balanced_splits_evenly_with_the_remainder_to_the_lowest_ids():
    assert expert_tokens([1 / 8] * 8, 16, 2) == [4] * 8  # 32 rows / 8 experts
    # 5 tokens x 2 = 10 rows over 8: 1.25 each, the 2 left over to experts 0 and 1
    assert expert_tokens([1 / 8] * 8, 5, 2) == [2, 2, 1, 1, 1, 1, 1, 1]
    # one decode token, top-2: two experts, one row each
    assert expert_tokens([1 / 8] * 8, 1, 2) == [1, 1, 0, 0, 0, 0, 0, 0]


def test_skew_follows_zipf_shares():
    shares = shares_for({"mode": "skew", "alpha": 1.0}, 0, 4)
    # 1, 1/2, 1/3, 1/4 over their sum 25/12
    assert shares == pytest.approx([12 / 25, 6 / 25, 4 / 25, 3 / 25])
    # 100 tokens x top-1 = 100 rows: 48, 24, 16, 12 exactly
    assert expert_tokens(shares, 100, 1) == [48, 24, 16, 12]
    assert shares_for({"mode": "skew", "alpha": 0}, 0, 8) == [1 / 8] * 8  # alpha 0: balanced


def test_no_expert_gets_more_rows_than_tokens():
    """A token picks k distinct experts: expert 0's Zipf share of 0.48 of 200 rows (96)
    is more than the 100 tokens can give it; the surplus goes to the others."""
    shares = shares_for({"mode": "skew", "alpha": 1.0}, 0, 4)
    assert expert_tokens(shares, 100, 2) == [96, 48, 32, 24]  # 96 < 100: no cap
    # 50 tokens x 2 = 100 rows: expert 0's 48 fits; 40 tokens x 2: 38.4 fits, but
    # 30 tokens x 3 = 90 rows of 4 experts: 43.2 > 30, capped; the 60 left split
    # 6:4:3 -> 27.69, 18.46, 13.85 -> 28, 18, 14
    assert expert_tokens(shares, 30, 3) == [30, 28, 18, 14]
    assert expert_tokens([0.9, 0.05, 0.05], 10, 2) == [10, 5, 5]
    assert expert_tokens([0.7, 0.2, 0.1, 0.0], 10, 2) == [10, 7, 3, 0]
    # all shares on one expert, top-2: the other row of each token goes to the unrouted
    assert expert_tokens([1.0, 0.0, 0.0], 10, 2) == [10, 5, 5]


def test_histogram_is_normalized_and_chosen_per_layer():
    routing = {"mode": "histogram", "shares": [1, 1, 2, 4], "layers": {1: [0, 0, 1, 1]}}
    assert shares_for(routing, 0, 4) == [0.125, 0.125, 0.25, 0.5]
    assert shares_for(routing, 1, 4) == [0, 0, 0.5, 0.5]
    assert expert_tokens(shares_for(routing, 1, 4), 6, 2) == [0, 0, 6, 6]
    # a layer in neither is balanced
    assert shares_for({"mode": "histogram", "layers": {"3": [1, 0]}}, 0, 2) == [0.5, 0.5]
    assert shares_for({"mode": "histogram", "layers": {"3": [1, 0]}}, 3, 2) == [1.0, 0.0]


def test_kept_experts_share_the_dropped_ones_tokens_in_proportion():
    routing = {"mode": "histogram", "shares": [4, 3, 2, 1]}
    assert shares_for(routing, 0, 2, kept=[0, 2]) == pytest.approx([4 / 6, 2 / 6])
    assert shares_for({}, 0, 3, kept=[1, 5, 7]) == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("seed", range(40))
def test_counts_invariants_on_random_shares(seed):
    """Sum = tokens·k and 0 <= n_e <= tokens, whatever the shares."""
    rng = random.Random(seed)
    e = rng.randint(1, 64)
    k = rng.randint(1, min(e, 8))
    tokens = rng.choice([1, 2, 3, 7, 16, 100, 4096])
    raw = [rng.choice([0.0, rng.random(), rng.random() ** 8]) for _ in range(e)]
    if not any(raw):
        raw[0] = 1.0
    shares = [x / sum(raw) for x in raw]
    counts = expert_tokens(shares, tokens, k)
    assert sum(counts) == tokens * k
    assert all(0 <= n <= tokens for n in counts)
    # a routed expert never gets fewer rows than a less-routed one of the same cap
    order = sorted(range(e), key=lambda i: -shares[i])
    assert all(counts[a] >= counts[b] - 1 for a, b in zip(order, order[1:]))


BASE = {"ops": [{"kind": "matmul", "m": 4, "n": 4, "k": 4}]}


@pytest.mark.parametrize("routing, field, message", [
    ("zipf", "routing", "expected a mapping, got 'zipf'"),
    ({"mode": "zipf"}, "routing.mode", "expected one of balanced, skew, histogram, got 'zipf'"),
    ({"mode": "skew"}, "routing.alpha", "missing: the Zipf exponent of mode skew (e.g. 1.2)"),
    ({"mode": "skew", "alpha": -1}, "routing.alpha", "must be a finite number >= 0, got -1"),
    ({"mode": "skew", "alpha": float("inf")}, "routing.alpha",
     "must be a finite number >= 0, got inf"),
    ({"mode": "balanced", "alpha": 1}, "routing.alpha", "unknown key for mode balanced"),
    ({"mode": "histogram"}, "routing.shares", "missing: mode histogram needs shares"),
    ({"mode": "histogram", "shares": [1, -2]}, "routing.shares",
     "shares must be finite numbers >= 0, got -2"),
    ({"mode": "histogram", "shares": [0, 0]}, "routing.shares", "shares sum to 0"),
    ({"mode": "histogram", "shares": []}, "routing.shares", "expected a list of one share"),
    ({"mode": "histogram", "layers": {"x": [1]}}, "routing.layers.x",
     "expected a layer index >= 0"),
    ({"mode": "histogram", "layers": {2: [1, float("nan")]}}, "routing.layers.2",
     "shares must be finite numbers >= 0, got nan"),
])
def test_bad_routing_is_one_line_naming_the_field(routing, field, message):
    with pytest.raises(InputError) as e:
        workload_from_dict({**BASE, "routing": routing}, "w.yaml")
    text = str(e.value)
    assert f"w.yaml: {field}: {message}" in text
    assert "\n" not in text


def test_all_routing_problems_are_collected_with_the_other_fields():
    with pytest.raises(InputError) as e:
        workload_from_dict({**BASE, "batch": 0, "routing": {"mode": "skew", "alpha": "x",
                                                             "shares": [1]}}, "w.yaml")
    fields = {p.field for p in e.value.problems}
    assert {"batch", "routing.alpha", "routing.shares"} <= fields


def test_histogram_of_the_wrong_length_is_caught_at_expansion(tmp_path):
    from test_moe_model import moe_workload

    from hwsim.simulate import prepare

    wl = workload_from_dict({**moe_workload(tmp_path), "routing": {
        "mode": "histogram", "layers": {1: [1, 2, 3]}}}, "w.yaml")
    with pytest.raises(InputError) as e:
        prepare(wl)
    assert str(e.value) == "w.yaml: routing.layers.1: has 3 shares, MoE layer 1 has 8 experts"


def test_cli_bad_routing_exits_2_without_traceback(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({**BASE, "routing": {"mode": "skew", "alpha": -1}}))
    root = Path(__file__).resolve().parents[1]  # the checkout's hwsim, not an installed one
    r = subprocess.run([sys.executable, "-m", "hwsim", "simulate", str(path)], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "routing.alpha: must be a finite number >= 0, got -1" in r.stderr
