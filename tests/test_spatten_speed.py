"""The SpAtten target's shortcut for speed gives what the long way gives, to the last bit.

The ``analytical`` fidelity takes an op's summary from its stages without making its
tasks (``SpattenTarget.lower_summary``, ``Work.summary``): every report equals the one
from making the tasks and summing them (``Target.lower_summary``), on both presets,
with and without refresh, in lone mode too; and the summary of random stage lists
(compute stages on any unit, streams of any size over any channel count, refresh on
or off) equals the tasks' summary, its keys in the same order, with as many tasks.
That summary is also a lower bound of the event schedule of the same tasks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import hwsim
from hwsim.accelerators.spatten import TARGET
from hwsim.accelerators.spatten.target import SpattenTarget
from hwsim.accelerators.spatten.work import Work
from hwsim.engine import run_events, summarize
from hwsim.targets import Target, resolve

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = [
    ("bert-base.yaml", "spatten", []),  # dense: matrix products, softmax, layernorm
    ("bert-base-spatten.yaml", "spatten", []),  # cascade pruning, top-k, re-fetches
    ("gpt2-small-spatten.yaml", "spatten", []),
    ("gpt2-small-generation.yaml", "spatten", []),  # generation: decode steps, short streams
    ("bert-base-spatten.yaml", "spatten-eighth", []),  # 2 channels, 4 fetchers
    ("bert-base-spatten.yaml", "spatten", ["target.dram_refresh=none"]),
    ("bert-base-spatten.yaml", "spatten-eighth", ["target.dram_refresh=per-bank"]),
    ("bert-base-spatten.yaml", "spatten", ["target.request_overlap=false"]),  # lone
    ("bert-base.yaml", "spatten", ["seq_len=77"]),  # streams not a multiple of 16 x 32 B
]


def _report(path: str, preset: str, sets: list[str]):
    r = hwsim.simulate(path, preset, sets=sets, fidelity="analytical")
    return repr(r.rows), repr(r.totals)


@pytest.mark.parametrize("name,preset,sets", WORKLOADS)
def test_analytical_summary_without_tasks_is_the_tasks_summary(name, preset, sets,
                                                               monkeypatch):
    path = str(ROOT / "workloads" / name)
    fast = _report(path, preset, sets)
    monkeypatch.setattr(SpattenTarget, "lower_summary", Target.lower_summary)
    assert _report(path, preset, sets) == fast


UNITS = ("qk", "softmax", "topk", "pv", "mover")
CLASSES = ("key", "value", "query", "lsb", "weight", "act")

stage = hs.one_of(
    hs.tuples(hs.just("compute"), hs.sampled_from(UNITS),
              hs.sampled_from([0.0, 1.0, 3.5, 1000.0, 123456.7]),
              hs.dictionaries(hs.sampled_from(["mac", "softmax_op", "sram_key_byte"]),
                              hs.floats(0.0, 1e6), max_size=3)),
    hs.tuples(hs.sampled_from(["read", "write"]), hs.sampled_from(CLASSES),
              hs.integers(1, 200_000), hs.sampled_from([1.0, 1.0003, 1.37, 2.5])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stages=hs.lists(stage, max_size=9), channels=hs.sampled_from([1, 2, 3, 7, 16]),
       fetchers=hs.sampled_from([1, 4, 32]),
       refresh=hs.sampled_from(["all-bank", "per-bank", "none"]))
def test_work_summary_is_the_summary_of_its_tasks(stages, channels, fetchers, refresh):
    """Random stage lists: streams that cover a few channels or wrap around them, reads
    and writes in any order (the fetchers' pool met at any point), compute stages with
    no cycles (kept for their actions, or dropped), units met again."""
    spec = dataclasses.replace(resolve("spatten").spec, dram_channels=channels,
                               fetch_channels=fetchers, dram_refresh=refresh)
    w = Work(spec, "op")
    for i, (what, a, b, c) in enumerate(stages):
        if what == "compute":
            w.compute(f"s{i}", a, b, actions=c)
        elif what == "read":
            w.read(f"s{i}", a, b, sram="key" if i % 2 else "")
            w.stages[-1].slowdown = c
        else:
            w.write(f"s{i}", a, b)
            w.stages[-1].slowdown = c
    pools = TARGET.pools(spec)
    tasks = w.tasks()
    want = summarize(tasks, pools)
    got, count = w.summary(pools)
    assert count == len(tasks)
    assert repr(got) == repr(want)
    assert list(got.bytes) == list(want.bytes) and list(got.actions) == list(want.actions)
    if tasks:  # the analytical latency never exceeds the event schedule's
        assert got.analytical_latency_s <= run_events(tasks, pools).latency_s * (1 + 1e-12)


@pytest.mark.parametrize("compute_first", [True, False])
@pytest.mark.parametrize("channels", [1, 16])
def test_a_tie_goes_to_the_unit_met_first(compute_first, channels):
    """A compute unit and a channel exactly as busy: the op's bound is that of the
    one its tasks meet first, in the tasks' summary and in the stages' alike."""
    spec = dataclasses.replace(resolve("spatten").spec, dram_channels=channels)
    per_tx_cycles = spec.dram_transaction_bytes / spec.dram_channel_bytes_per_cycle
    w = Work(spec, "op")
    tx = 8 * channels  # 8 transactions on every channel
    if compute_first:
        w.compute("qk", "qk", 8 * per_tx_cycles)
    w.read("keys", "key", tx * spec.dram_transaction_bytes)
    w.stages[-1].slowdown = 1.0  # (the stream at peak, for the tie)
    if not compute_first:
        w.compute("qk", "qk", 8 * per_tx_cycles)
    pools = TARGET.pools(spec)
    want = summarize(w.tasks(), pools)
    got, _ = w.summary(pools)
    assert want.bound == ("compute" if compute_first else "memory")
    assert repr(got) == repr(want)
