"""Every zoo model and phase, from its shipped template, on the roofline target.

This is the issue's end-to-end check: `hwsim simulate` prints a table, and
`--json -` a report that follows DESIGN.md's schema, whose per-op latencies
follow the roofline formula.
"""

import json

import pytest

from hwsim import zoo
from hwsim.cli.main import main
from hwsim.ir import read_bytes, write_bytes
from hwsim.ir.kinds import executed_flops, flops
from hwsim.targets import resolve

SIZES = {"prefill": {"seq_len": 64}, "decode": {"seq_len": 1, "kv_len": 200}}
# Weights larger than one roofline-v100's 32 GiB: this test checks the roofline
# formula op by op on one device, so it lends the device the memory (capacity
# itself is tested in tests/test_physics_core.py and tests/test_models_zoo.py).
BIG = {"llama-3.1-70b": "target.dram_bytes=256GiB", "mixtral-8x7b": "target.dram_bytes=128GiB"}
CASES = [(m, p) for m in zoo.names() for p in zoo.phases(m) if zoo.shipped_path(m, p)]

TOTALS = {"latency_s", "cycles", "flops", "dense_flops", "executed_flops",
          "dram_read_bytes", "dram_write_bytes",
          "energy_j", "energy_breakdown_j"}
LAYER_KEYS = {"layer", "latency_s", "flops", "dram_read_bytes", "dram_write_bytes", "energy_j"}
OP_KEYS = {"id", "name", "kind", "layer", "start_s", "latency_s", "flops", "executed_flops",
           "dram_read_bytes",
           "dram_write_bytes", "energy_j", "bound"}


def test_every_zoo_model_has_a_shipped_prefill_template():
    expected = {"bert-base", "bert-large", "gpt2", "gpt2-medium", "llama-2-7b", "llama-2-13b",
                "vit-base", "deit-small", "llava-1.5-7b"}
    assert expected <= {m for m, p in CASES if p == "prefill"}
    assert {"gpt2", "gpt2-medium", "llama-2-7b", "llama-2-13b", "llava-1.5-7b"} <= {
        m for m, p in CASES if p == "decode"}


@pytest.mark.parametrize("model,phase", CASES, ids=[f"{m}.{p}" for m, p in CASES])
def test_simulate_zoo_model_on_roofline(model, phase, tmp_path, capsys):
    sizes = dict(SIZES[phase])
    minimum = (zoo.template(model, phase).header.get("template") or {}).get("min_seq_len")
    if minimum:  # a vision-language prefill holds its visual tokens and a question
        sizes["seq_len"] = minimum + 29
    wl = tmp_path / "wl.yaml"
    wl.write_text(f"model: {model}\nphase: {phase}\n"
                  + "".join(f"{k}: {v}\n" for k, v in sizes.items()))
    extra = ["--set", BIG[model]] if model in BIG else []
    assert main(["simulate", str(wl), "--target", "roofline", "--json", "-", *extra]) == 0
    out = capsys.readouterr()
    assert "top 10 ops by latency" in out.err  # the table goes to stderr with --json -
    doc = json.loads(out.out)
    assert doc["schema"] == "hwsim.report/1"
    assert set(doc["totals"]) == TOTALS
    assert set(doc["totals"]["energy_breakdown_j"]) == {"compute", "onchip", "dram", "static",
                                                        "interconnect"}
    assert doc["target"]["name"] == "roofline" and doc["target"]["preset"] == "roofline-v100"
    assert doc["workload"]["model"] == model
    assert all(set(r) == LAYER_KEYS for r in doc["layers"])
    assert all(set(r) == OP_KEYS for r in doc["ops"])
    assert doc["totals"]["flops"] == sum(r["flops"] for r in doc["ops"])
    assert doc["totals"]["latency_s"] == pytest.approx(sum(r["latency_s"] for r in doc["ops"]))
    # the roofline formula, op by op, recomputed from the graph
    from hwsim.simulate import device_graph
    from hwsim.workload import build_graph, load_workload
    from hwsim.workload.logits import select_logits
    loaded = load_workload(wl)  # the graph the target runs: MoE experts expanded
    graph = device_graph(select_logits(build_graph(loaded), loaded.logits), loaded)
    spec = resolve("roofline").spec
    # no host: every op enqueued at t = 0, so the first op that launches pays the whole
    # launch, each later one the gap (its launch taken in behind the op before)
    launch = spec.kernel_launch_s
    for row, op in zip(doc["ops"], graph.ops, strict=True):
        assert row["kind"] == op.kind
        if op.kind == "view":
            assert row["latency_s"] == 0
            continue
        nbytes = read_bytes(op, graph) + write_bytes(op, graph)
        n = executed_flops(op)  # a causal attention skips its masked scores
        assert row["executed_flops"] == n <= row["flops"] == flops(op)
        compute_s = n / spec.peak_flops_per_s["fp16" if op.kind in ("matmul", "attention")
                                              else _peak_key(graph, op)] if n else 0.0
        expected = max(compute_s, nbytes / spec.dram_bw_bytes_per_s) + launch
        assert row["latency_s"] == pytest.approx(expected, rel=1e-9)
        launch = spec.kernel_gap_s


def _peak_key(graph, op):
    dtype = graph.tensors[op.outputs[0]].dtype
    return "int32" if dtype in ("int64", "int32", "bool") else dtype
