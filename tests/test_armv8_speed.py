"""The ARMv8 target's shortcuts for speed give what the long way gives, to the last bit.

- the ``analytical`` fidelity sums an op's tasks as the plan emits them
  (``ARMv8Target.lower_summary``, an :class:`hwsim.engine.Accumulator` as the sink):
  every report equals the one from making the tasks and summing them
  (``Target.lower_summary``), carried inputs and kept outputs included;
- (the interference solve in scalars is held to numpy's iteration in
  ``test_armv8_interference.py``).
"""

from __future__ import annotations

import pytest

import hwsim
from hwsim.accelerators.armv8.target import ARMv8Target
from hwsim.targets import Target

WORKLOADS = [
    ("bert-base.yaml", []),  # GEMMs, softmax, layernorm, carried inputs
    ("armv8-small-gemm.yaml", []),  # IAAT
    ("armv8-tall-skinny.yaml", []),  # AutoTSMM
    ("armv8-tinyllama-decode.yaml", []),  # decode: few threads, GQA attention
    ("bert-base-spatten.yaml", ["seq_len=96"]),  # a top-k, attention selecting values
    ("llama2-7b-lazyllm.yaml", ["seq_len=512"]),  # every layer different
]


def _report(path, sets):
    r = hwsim.simulate(path, "armv8", sets=sets, fidelity="analytical")
    return repr(r.rows), repr(r.totals)


@pytest.mark.parametrize("name,sets", WORKLOADS)
def test_analytical_summary_without_tasks_is_the_tasks_summary(name, sets, monkeypatch):
    from pathlib import Path  # noqa: PLC0415

    path = str(Path(__file__).resolve().parents[1] / "workloads" / name)
    fast = _report(path, sets)
    monkeypatch.setattr(ARMv8Target, "lower_summary", Target.lower_summary)
    assert _report(path, sets) == fast
