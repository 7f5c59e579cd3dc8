"""Today's zoo (issue 12): Llama-3.1-8B/70B, Llama-3.2-1B, Mistral-7B-v0.1, Qwen2.5-7B.

Each is built from its model card's config.json, shipped as data in
hwsim/trace/configs/, and ships prefill and decode templates in traces/. The
hand counts below are written term by term from the configs' values; the
simulations run in a fresh interpreter where torch cannot be imported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from no_torch import simulate_without_torch, simulated

from hwsim import zoo
from hwsim.trace import configs, hfconfig
from hwsim.trace.zoo_names import ZOO
from hwsim.workload import build_graph, workload_from_dict
from hwsim.workload.logits import select_logits

ROOT = Path(__file__).resolve().parents[1]
NEW = ("llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "mistral-7b-v0.1", "qwen2.5-7b")
CARDS = {"llama-3.1-8b": "meta-llama/Llama-3.1-8B", "llama-3.1-70b": "meta-llama/Llama-3.1-70B",
         "llama-3.2-1b": "meta-llama/Llama-3.2-1B", "mistral-7b-v0.1": "mistralai/Mistral-7B-v0.1",
         "qwen2.5-7b": "Qwen/Qwen2.5-7B"}


def graph(model: str, logits: str = "last", **size):
    wl = workload_from_dict({"model": model, "logits": logits, **size})
    return select_logits(build_graph(wl), wl.logits)


def matmul_attention(g) -> int:
    by_kind = g.flops_by_kind()
    return by_kind["matmul"] + by_kind["attention"]


# ---------------------------------------------------------------- shipped configs
@pytest.mark.parametrize("model", NEW)
def test_shipped_config_cites_its_model_card(model):
    text = configs.path(model).read_text(encoding="utf-8")
    url = f"https://huggingface.co/{CARDS[model]}/blob/main/config.json"
    assert url in text.splitlines()[1]
    # every value line carries its comment
    values = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    assert all("# config.json" in line for line in values)
    assert yaml.safe_load(text) == configs.load(model)


def test_zoo_dims_are_the_configs():
    llama8 = ZOO["llama-3.1-8b"]["dims"]
    assert (llama8["layers"], llama8["hidden"], llama8["heads"], llama8["kv_heads"],
            llama8["ffn"], llama8["vocab"]) == (32, 4096, 32, 8, 14336, 128256)
    assert ZOO["llama-3.1-70b"]["dims"]["layers"] == 80
    assert ZOO["llama-3.2-1b"]["dims"]["head_dim"] == 64
    assert ZOO["mistral-7b-v0.1"]["dims"]["window"] == 4096
    assert ZOO["qwen2.5-7b"]["dims"]["kv_heads"] == 4
    for model in NEW:
        cfg = configs.load(model)
        dims = ZOO[model]["dims"]
        assert dims["layers"] == cfg["num_hidden_layers"]
        assert dims["hidden"] == cfg["hidden_size"]
        assert dims["heads"] == cfg["num_attention_heads"]
        assert dims["kv_heads"] == cfg["num_key_value_heads"]
        assert dims["ffn"] == cfg["intermediate_size"]
        assert dims["vocab"] == cfg["vocab_size"]
        assert ZOO[model]["phases"] == ("prefill", "decode")
        assert zoo.shipped_path(model, "prefill") and zoo.shipped_path(model, "decode")


def test_configs_and_templates_travel_in_a_wheel(built_wheel):
    """A non-editable install carries the configs (package data of hwsim.trace.configs)
    and the templates (hwsim/_traces): build the wheel offline and look inside."""
    import zipfile

    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in NEW:
        assert f"hwsim/trace/configs/{model}.yaml" in names
        assert f"hwsim/_traces/{model}.prefill.json.gz" in names
        assert f"hwsim/_traces/{model}.decode.json.gz" in names


# ---------------------------------------------------------------- hand counts
# Llama-3.1-8B (config.json): d=4096, 32 layers, 32 heads over 8 KV heads of 128
# (K and V projections 4096 x 8·128 = 1024), SwiGLU FFN 14336, vocabulary 128256.
S, D, LAYERS, KV_DIM, FFN, VOCAB = 2048, 4096, 32, 8 * 128, 14336, 128256
LAYER = (2 * S * D * D            # q_proj
         + 2 * S * D * KV_DIM     # k_proj (GQA: hidden x kv_heads·head_dim)
         + 2 * S * D * KV_DIM     # v_proj
         + 2 * S * D * D          # o_proj
         + 2 * S * D * FFN        # gate_proj
         + 2 * S * D * FFN        # up_proj
         + 2 * S * FFN * D        # down_proj
         + 2 * S * S * D          # Q·Kᵀ over all 32 heads (32·128 = d), full square
         + 2 * S * S * D)         # P·V
LLAMA31_8B_LAST = LAYERS * LAYER + 2 * 1 * D * VOCAB  # LM head on the last position
LLAMA31_8B_ALL = LAYERS * LAYER + 2 * S * D * VOCAB  # logits: all


def test_llama31_8b_flops_equal_the_hand_count():
    assert LLAMA31_8B_LAST == 30_787_376_250_880
    assert LLAMA31_8B_ALL == 32_938_104_193_024
    last, every = graph("llama-3.1-8b", seq_len=S), graph("llama-3.1-8b", "all", seq_len=S)
    assert matmul_attention(last) == LLAMA31_8B_LAST
    assert matmul_attention(every) == LLAMA31_8B_ALL
    assert last.flops_by_kind()["attention"] == LAYERS * 4 * S * S * D
    k_proj = [op for op in last.ops if op.name == "k_proj"]
    assert len(k_proj) == 32 and all(
        (op.attrs["m"], op.attrs["n"], op.attrs["k"]) == (S, KV_DIM, D) for op in k_proj)
    gated = [op for op in last.ops if op.name in ("gate_proj", "up_proj", "down_proj")]
    assert len(gated) == 3 * 32


def test_llama31_8b_parameters_and_gqa():
    g = graph("llama-3.1-8b", seq_len=16)
    # 128256·4096 embedding + 32·(2·4096² + 2·4096·1024 + 3·4096·14336 + 2·4096) + 4096
    # + 4096·128256 LM head = 8,030,261,248 parameters (the card's 8.03B), at 2 bytes
    params = (VOCAB * D + 32 * (2 * D * D + 2 * D * KV_DIM + 3 * D * FFN + 2 * D) + D
              + D * VOCAB)
    assert params == 8_030_261_248
    assert g.param_bytes() == 2 * params
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert len(att) == 32 and {(a["heads"], a["kv_heads"], a["head_dim"]) for a in att} == {
        (32, 8, 128)}
    assert all(a["causal"] and "window" not in a for a in att)


def test_llama32_1b_ties_its_lm_head_to_the_embedding():
    g = graph("llama-3.2-1b", seq_len=2048)
    d, kv, ffn, vocab, s = 2048, 8 * 64, 8192, 128256, 2048
    # 16 layers of q, k, v, o, gate, up, down and 2 norms; one 128256 x 2048 table
    # serves the embedding and the LM head (tie_word_embeddings: true): 1,235,814,400
    params = vocab * d + 16 * (2 * d * d + 2 * d * kv + 3 * d * ffn + 2 * d) + d
    assert params == 1_235_814_400
    assert g.param_bytes() == 2 * params
    layer = 2 * s * d * d + 2 * 2 * s * d * kv + 2 * s * d * d + 3 * 2 * s * d * ffn \
        + 4 * s * s * d
    assert matmul_attention(g) == 16 * layer + 2 * d * vocab == 4_536_010_801_152
    head = next(op for op in g.ops if op.name == "lm_head")
    embed = next(op for op in g.ops if op.kind == "embedding")
    assert g.root(head.inputs[1]) == g.root(embed.inputs[0])


@pytest.mark.parametrize("phase,size", [("prefill", {"seq_len": 9000}),
                                        ("decode", {"seq_len": 1, "kv_len": 9000})])
def test_mistral_attention_carries_its_window(phase, size):
    g = graph("mistral-7b-v0.1", phase=phase, **size)
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert len(att) == 32
    assert all(a["window"] == 4096 and a["causal"] and a["kv_heads"] == 8 for a in att)
    # counted FLOPs are the full square (the convention); the cache holds every token
    if phase == "prefill":
        assert all(a["q_len"] == a["kv_len"] == 9000 for a in att)
    else:
        assert all(a["q_len"] == 1 and a["kv_len"] == 9001 for a in att)


def test_qwen25_has_biases_on_q_k_v_only():
    g = graph("qwen2.5-7b", seq_len=64)
    by_name: dict[str, set] = {}
    for op in g.ops:
        if op.kind == "matmul" and op.layer is not None:
            by_name.setdefault(op.name, set()).add(bool(op.attrs.get("bias")))
    assert by_name["q_proj"] == by_name["k_proj"] == by_name["v_proj"] == {True}
    assert by_name["o_proj"] == by_name["gate_proj"] == by_name["down_proj"] == {False}
    k_proj = next(op for op in g.ops if op.name == "k_proj")
    assert (k_proj.attrs["n"], k_proj.attrs["k"]) == (4 * 128, 3584)  # 4 KV heads of 128
    # the bias vectors are parameters of the graph: 3584 + 512 + 512 per layer
    biases = sum(g.tensors[op.inputs[2]].numel for op in g.ops
                 if op.kind == "matmul" and op.attrs.get("bias"))
    assert biases == 28 * (3584 + 512 + 512)


def test_llama31_rope_scaling_and_context():
    cfg = configs.load("llama-3.1-8b")
    assert hfconfig.rope_scaling(cfg) == {"rope_type": "llama3", "factor": 8.0,
                                          "original_max_position_embeddings": 8192}
    limit, why = hfconfig.context_limit(cfg)
    assert limit == 131_072 and "llama3" in why
    header = zoo.template("llama-3.1-8b", "prefill").header["config"]
    assert header["rope_scaling"]["rope_type"] == "llama3" and header["max_positions"] == 131_072


@pytest.mark.trace
def test_llama31_model_is_built_with_llama3_rope():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hwsim.trace import zoo as tracer_zoo

    prepared = tracer_zoo.prepare("llama-3.1-8b", phase="prefill", batch=1, seq_len=4, kv_len=0,
                                  dtype="fp16", attn_implementation="sdpa", layers=1)
    model = prepared.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.model.rotary_emb.rope_type == "llama3"
    assert model.config.rope_parameters["factor"] == 8.0
    assert model.config.max_position_embeddings == 131_072


# ---------------------------------------------------------------- templates vs traces
@pytest.mark.trace
@pytest.mark.parametrize("model,phase,batch,seq_len,kv_len", [
    ("llama-3.1-8b", "prefill", 1, 77, 0), ("llama-3.1-8b", "decode", 2, 1, 300),
    ("llama-3.1-70b", "prefill", 2, 33, 0), ("llama-3.2-1b", "decode", 1, 1, 40),
    ("mistral-7b-v0.1", "prefill", 1, 50, 0), ("qwen2.5-7b", "prefill", 3, 21, 0),
    ("qwen2.5-7b", "decode", 1, 1, 64)])
def test_shipped_template_equals_a_fresh_trace(model, phase, batch, seq_len, kv_len):
    check_shipped_template(model, phase, batch=batch, seq_len=seq_len, kv_len=kv_len)


def check_shipped_template(model: str, phase: str, **size: int) -> None:
    """The shipped template of ``model``'s ``phase``, instantiated at ``size`` (a size it
    was neither fitted at nor checked at), equals a fresh trace of that size."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hwsim.trace import trace
    from hwsim.trace.template import compare

    tmpl = zoo.template(model, phase)
    assert size not in tmpl.header["template"]["points"]
    assert size != tmpl.header["template"]["checked_at"]
    assert compare(tmpl.instantiate(**size), trace(model, phase=phase, **size)) == []


# ---------------------------------------------------------------- every target, no torch
TARGETS = ("roofline", "ascend", "volta", "armv8", "spatten")
SIZES = {"prefill": {"seq_len": 256}, "decode": {"seq_len": 1, "kv_len": 1024}}
# Where a preset refuses a model for capacity, the remedy the test simulates instead:
# tensor parallelism where the target has links, a bigger HBM where it has none
# (SpAtten is one chip of 8 GiB; a design point with more memory).
REMEDY = {("llama-3.1-70b", "roofline"): {"devices": 8},
          ("llama-3.1-70b", "volta"): {"devices": 8},
          ("llama-3.1-70b", "ascend"): {"devices": 4},
          ("llama-3.1-70b", "spatten"): {"sets": ["target.dram_bytes=160 GiB"]},
          **{(m, "spatten"): {"sets": ["target.dram_bytes=32 GiB"]}
             for m in ("llama-3.1-8b", "mistral-7b-v0.1", "qwen2.5-7b")}}


def test_every_new_model_runs_on_every_target_without_torch():
    cases = []
    for model in NEW:
        for phase, size in SIZES.items():
            for target in TARGETS:
                base = {"model": model, "phase": phase, "size": size, "target": target}
                remedy = REMEDY.get((model, target))
                if remedy:
                    cases.append({**base, "expect_refusal": True})
                cases.append({**base, **(remedy or {})})
    flops: dict[tuple, set] = {}
    for run in simulate_without_torch(cases):
        where = f"{run['model']} {run['phase']} on {run['target']}"
        if not simulated(run, where):
            continue
        assert run["kv_read"] > 0, where
        if "devices" not in run:
            flops.setdefault((run["model"], run["phase"]), set()).add(run["flops"])
    # the counted FLOPs are the graph's, whichever target runs it
    assert all(len(v) == 1 for v in flops.values()), flops
    assert len(flops) == 2 * len(NEW)


# ---------------------------------------------------------------- example workloads
def test_example_workloads_of_the_new_models():
    import hwsim

    wl = ROOT / "workloads"
    decode = hwsim.simulate(wl / "llama3.1-8b-decode.yaml", "roofline", fidelity="analytical")
    # the cache after the step: 32 layers x (K, V) x 8 KV heads x 128 x 32,768 x 2 bytes
    assert decode.memory["kv_cache_bytes"] == 32 * 2 * 8 * 128 * 32768 * 2 == 4_294_967_296
    qwen = hwsim.simulate(wl / "qwen2.5-7b-decode.yaml", "roofline", fidelity="analytical")
    assert qwen.memory["kv_cache_bytes"] == 28 * 2 * 4 * 128 * 32768 * 2
    tp = hwsim.simulate(wl / "llama3.1-70b-prefill-8dev.yaml", "volta", fidelity="analytical")
    assert tp.devices == 8 and (tp.ops["kind"] == "allreduce").sum() == 2 * 80
    edge = hwsim.simulate(wl / "llama3.2-1b-armv8-decode.yaml", "armv8", fidelity="analytical")
    assert edge.memory["weights_bytes"] == 2 * 1_235_814_400  # the tied table once
    # Mistral at 16K: query i sees min(i + 1, 4096) keys, so the roofline (which
    # executes visible scores exactly) runs w·s - w(w-1)/2 of them per head, 44 % of
    # the causal triangle; counted FLOPs stay the full square (the convention)
    mistral = hwsim.simulate(wl / "mistral-7b-prefill-16k.yaml", "roofline",
                             fidelity="analytical")
    att = mistral.ops[mistral.ops["kind"] == "attention"]
    s, d, w = 16384, 4096, 4096
    assert int(att["flops"].sum()) == 32 * 4 * s * s * d
    assert int(att["executed_flops"].sum()) == 32 * 4 * d * (w * s - w * (w - 1) // 2)
