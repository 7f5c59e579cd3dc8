"""Shipped templates (traces/) against fresh traces at sizes they were not fitted at."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hwsim.ir import load  # noqa: E402
from hwsim.trace import ZOO_NAMES, trace, trace_template  # noqa: E402
from hwsim.trace.template import compare, grid  # noqa: E402
from hwsim.trace.zoo_names import phases, template_path  # noqa: E402

pytestmark = pytest.mark.trace

TRACES = Path(__file__).resolve().parents[1] / "traces"


def shipped(model: str, phase: str):
    return load(TRACES / template_path(model, phase))


# (model, phase, batch, seq_len, kv_len): none of these is a fitting point
SIZES = [
    ("gpt2", "prefill", 1, 100, 0),
    ("gpt2", "prefill", 3, 33, 0),
    ("gpt2", "decode", 2, 1, 50),
    ("gpt2-medium", "decode", 1, 1, 1500),
    ("bert-base", "prefill", 1, 128, 0),
    ("minilm-l6", "prefill", 4, 2, 0),
    ("llama-2-7b", "prefill", 1, 77, 0),
    ("llama-2-7b", "prefill", 2, 3, 0),
    ("llama-2-7b", "decode", 1, 1, 300),
    ("llama-2-7b", "decode", 4, 1, 2),
    ("llama-2-13b", "prefill", 1, 40, 0),
    ("vit-base", "prefill", 1, 197, 0),
    ("deit-small", "prefill", 2, 50, 0),
    ("llava-1.5-7b", "prefill", 1, 611, 0),
    ("llava-1.5-7b", "prefill", 2, 650, 0),
    ("llava-1.5-7b", "decode", 1, 1, 700),
]


@pytest.mark.parametrize("model,phase,batch,seq_len,kv_len", SIZES)
def test_template_equals_a_fresh_trace(model, phase, batch, seq_len, kv_len):
    template = shipped(model, phase)
    fitted = [(p["batch"], p["seq_len"], p["kv_len"]) for p in template.header["template"]
              ["points"]]
    assert (batch, seq_len, kv_len) not in fitted
    size = {"batch": batch, "seq_len": seq_len, "kv_len": kv_len}
    fresh = trace(model, phase=phase, **size)
    assert compare(template.instantiate(**size), fresh) == []


def test_every_zoo_model_and_phase_is_shipped():
    expected = {template_path(m, p) for m in ZOO_NAMES for p in phases(m)}
    assert expected <= {p.name for p in TRACES.glob("*.json.gz")}
    assert {"gpt2.decode.json.gz", "llama-2-13b.decode.json.gz",
            "llava-1.5-7b.decode.json.gz"} <= expected
    total = sum((TRACES / name).stat().st_size for name in expected)
    assert total < 1_000_000


@pytest.mark.parametrize("name", sorted(f"{m}.{p}" for m in ZOO_NAMES for p in phases(m)))
def test_shipped_template_verifies_and_states_its_regime(name):
    model, phase = name.rsplit(".", 1)
    template = shipped(model, phase)
    assert template.is_template and template.verify() == []
    assert template.header["model"] == model and template.header["phase"] == phase
    meta = template.header["template"]
    points, check, regime = grid(model, phase)
    assert meta["points"] == points and meta["checked_at"] == check
    assert {k: meta[k] for k in regime} == regime
    sizes = {v for t in template.tensors.values() for d in t.shape if not isinstance(d, int)
             for v in d.variables}
    assert sizes == ({"batch", "kv_len"} if phase == "decode" else {"batch", "seq_len"})


def test_llava_segments_follow_seq_len():
    g = shipped("llava-1.5-7b", "prefill").instantiate(batch=1, seq_len=700)
    assert g.header["segments"] == {"text": [0, 35], "visual": [35, 611],
                                    "question": [611, 700]}
    assert g.header["stacks"] == {"vision": {"first_layer": 0, "num_layers": 24},
                                  "language": {"first_layer": 24, "num_layers": 32}}


def test_trace_template_fits_and_checks():
    t = trace_template("gpt2", "decode", layers=2)
    assert t.header["template"]["seq_len"] == 1
    att = next(op for op in t.ops if op.kind == "attention")
    assert str(att.attrs["kv_len"]) == "kv_len + 1"
    assert str(att.attrs["batch"]) == "batch"
