"""Mixtral-8x7B (issue 12): a mixture of experts in the zoo, traced from its config.

The model is built from its model card's config.json (hwsim/trace/configs/
mixtral-8x7b.yaml); each layer's sparse MoE block is its router, traced as
ordinary ops (a linear to 8 logits, softmax, top-2, renormalisation), and one
``moe_experts`` op for the 8 experts (hwsim/trace/moe.py). The hand counts
below are written term by term from the config's values; the simulations run
in a fresh interpreter where torch cannot be imported. Small Mixtral-like and
Qwen2-MoE-like configs check that a user's own MoE config traces from its path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from no_torch import simulate_without_torch, simulated
from test_models_zoo import check_shipped_template

from hwsim import zoo
from hwsim.cli.main import main
from hwsim.ir.kinds import flops
from hwsim.trace import configs, hfconfig
from hwsim.trace.zoo_names import ZOO
from hwsim.workload import build_graph, workload_from_dict
from hwsim.workload.logits import select_logits

ROOT = Path(__file__).resolve().parents[1]
MODEL = "mixtral-8x7b"
CARD = "https://huggingface.co/mistralai/Mixtral-8x7B-v0.1/blob/main/config.json"

# Mixtral-8x7B-v0.1 (config.json): d = 4096, 32 layers, 32 query heads over 8 KV
# heads of 128 (K and V projections 4096 x 8·128 = 1024), 8 SwiGLU experts of width
# 14336 per layer, 2 per token, vocabulary 32000, untied LM head.
D, LAYERS, KV_DIM, FFN, EXPERTS, TOP_K, VOCAB = 4096, 32, 8 * 128, 14336, 8, 2, 32000


def graph(model: str = MODEL, logits: str = "last", **size):
    """The workload's graph as traced (``moe_experts`` not yet expanded)."""
    wl = workload_from_dict({"model": model, "logits": logits, **size})
    return select_logits(build_graph(wl), wl.logits)


def counted(g, kinds=("matmul", "attention", "moe_experts")) -> int:
    by_kind = g.flops_by_kind()
    return sum(by_kind.get(k, 0) for k in kinds)


# ---------------------------------------------------------------- the config
def test_shipped_config_cites_its_model_card_value_by_value():
    text = configs.path(MODEL).read_text(encoding="utf-8")
    assert CARD in text.splitlines()[1]
    values = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    assert all("# config.json" in line for line in values)
    cfg = configs.load(MODEL)
    assert yaml.safe_load(text) == cfg
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["model_type"] == "mixtral"
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]) == (
        4096, 14336, 32)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]) == (
        32, 8, 32000)
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"]) == (8, 2)
    assert cfg["rope_theta"] == 1_000_000.0 and cfg["max_position_embeddings"] == 32768
    assert cfg["sliding_window"] is None and cfg["rms_norm_eps"] == 1e-5
    assert cfg["router_aux_loss_coef"] == 0.02 and cfg["output_router_logits"] is False
    assert cfg["tie_word_embeddings"] is False and cfg["hidden_act"] == "silu"


def test_zoo_entry_and_headline_list_the_experts(capsys):
    entry = ZOO[MODEL]
    assert entry["family"] == "hf" and entry["config"] == MODEL
    assert entry["phases"] == ("prefill", "decode")
    dims = entry["dims"]
    assert (dims["layers"], dims["hidden"], dims["heads"], dims["kv_heads"], dims["ffn"],
            dims["vocab"], dims["experts"], dims["experts_per_token"]) == (
        32, 4096, 32, 8, 14336, 32000, 8, 2)
    assert dims["window"] == 0 and dims["max_positions"] == 32768
    head = hfconfig.headline(configs.load(MODEL))
    assert (head["experts"], head["experts_per_token"]) == (8, 2)
    assert zoo.shipped_path(MODEL, "prefill") and zoo.shipped_path(MODEL, "decode")
    assert main(["models"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith(MODEL + " ")]
    assert "32/8" in row and "8 (top 2)" in row and "32,768" in row and "shipped" in row


# ---------------------------------------------------------------- the graph
def test_each_layer_is_attention_router_and_one_moe_experts_op():
    S = 2048
    g = graph(seq_len=S)
    assert g.header["stacks"] == {"decoder": {"first_layer": 0, "num_layers": 32}}
    moe = [op for op in g.ops if op.kind == "moe_experts"]
    assert [op.layer for op in moe] == list(range(LAYERS))
    assert {op.name for op in moe} == {"experts"}
    for op in moe:
        assert op.attrs == {"tokens": S, "hidden": D, "ffn": FFN, "experts": EXPERTS,
                            "top_k": TOP_K, "act": "silu", "gated": True}
        x, index, weight, w_in, w_out = (g.tensors[t] for t in op.inputs)
        assert (x.numel, index.numel, weight.numel) == (S * D, S * TOP_K, S * TOP_K)
        assert index.dtype == "int64"
        assert tuple(w_in.shape) == (EXPERTS, 2 * FFN, D) and w_in.kind == "param"
        assert tuple(w_out.shape) == (EXPERTS, D, FFN) and w_out.kind == "param"
        assert g.tensors[op.outputs[0]].numel == S * D
    # the router of layer 3: a linear to 8 logits, softmax, top-2, renormalisation
    router = [op for op in g.ops if op.layer == 3 and op.module.endswith("mlp.gate")]
    kinds = [op.kind for op in router]
    assert kinds == ["matmul", "elementwise", "softmax", "topk", "reduce", "elementwise"]
    mm, top = router[0], router[3]
    assert (mm.attrs["m"], mm.attrs["n"], mm.attrs["k"]) == (S, EXPERTS, D)
    assert (top.attrs["rows"], top.attrs["n"], top.attrs["k"]) == (S, EXPERTS, TOP_K)
    # the experts read the router's ids and its renormalised weights
    moe3 = moe[3]
    assert moe3.inputs[1] == top.outputs[1] and moe3.inputs[2] == router[-1].outputs[0]
    # no dense FFN anywhere: the experts are the FFN
    assert not [op for op in g.ops if op.name in ("gate_proj", "up_proj", "down_proj")]
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert len(att) == 32 and all(
        (a["heads"], a["kv_heads"], a["head_dim"], a["causal"]) == (32, 8, 128, True)
        and "window" not in a for a in att)


# Prefill at S = 2048 tokens, per layer (embedding lookup: no FLOPs):
S = 2048
LAYER = (2 * S * D * D                 # q_proj
         + 2 * S * D * KV_DIM          # k_proj (GQA: hidden x kv_heads·head_dim)
         + 2 * S * D * KV_DIM          # v_proj
         + 2 * S * D * D               # o_proj
         + 2 * S * S * D               # Q·Kᵀ over all 32 heads (32·128 = d), full square
         + 2 * S * S * D               # P·V
         + 2 * S * D * EXPERTS         # router: hidden -> one logit per expert
         + S * TOP_K * (2 * D * 2 * FFN  # each routed token: gate and up projections,
                        + 2 * FFN * D    # the down projection,
                        + 3 * FFN))      # SwiGLU silu(g)·u (silu 2 + product 1)
MIXTRAL_LAST = LAYERS * LAYER + 2 * 1 * D * VOCAB  # LM head on the last position
MIXTRAL_ALL = LAYERS * LAYER + 2 * S * D * VOCAB   # logits: all


def test_mixtral_flops_equal_the_hand_count():
    assert MIXTRAL_LAST == 53_886_264_016_896
    assert MIXTRAL_ALL == 54_422_872_784_896
    last, every = graph(seq_len=S), graph(logits="all", seq_len=S)
    assert counted(last) == MIXTRAL_LAST
    assert counted(every) == MIXTRAL_ALL
    by_kind = last.flops_by_kind()
    assert by_kind["attention"] == LAYERS * 4 * S * S * D
    assert by_kind["moe_experts"] == LAYERS * S * TOP_K * (6 * D * FFN + 3 * FFN)
    # the router's softmax (5 per element) and top-k (n per row) are counted too
    assert by_kind["softmax"] == LAYERS * 5 * S * EXPERTS
    assert by_kind["topk"] == LAYERS * S * EXPERTS


def test_decode_step_runs_two_experts_per_token():
    g = graph(phase="decode", seq_len=1, kv_len=4095, batch=3)
    moe = [op for op in g.ops if op.kind == "moe_experts"]
    assert len(moe) == 32 and {op.attrs["tokens"] for op in moe} == {3}
    assert all(flops(op) == 3 * TOP_K * (6 * D * FFN + 3 * FFN) for op in moe)
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert {(a["q_len"], a["kv_len"]) for a in att} == {(1, 4096)}


def test_parameters_are_46_7b_of_which_12_9b_active():
    g = graph(seq_len=16)
    # embedding 32000·4096 + 32 layers x (q, o: 4096² each; k, v: 4096·1024 each;
    # router 8·4096; 8 experts x 3·4096·14336; two RMSNorms 2·4096) + final norm 4096
    # + untied LM head 4096·32000 = 46,702,792,704 (Mistral AI: 46.7B total; Jiang et
    # al. 2024, arXiv 2401.04088: "47B parameters")
    per_layer = (2 * D * D + 2 * D * KV_DIM + EXPERTS * D + EXPERTS * 3 * D * FFN + 2 * D)
    params = VOCAB * D + LAYERS * per_layer + D + D * VOCAB
    assert params == 46_702_792_704
    assert g.param_bytes() == 2 * params
    # a token runs 2 of the 8 experts: 6 experts' weights per layer sit idle
    expert_params = sum(g.tensors[t].numel for op in g.ops if op.kind == "moe_experts"
                        for t in op.inputs[3:])
    assert expert_params == LAYERS * EXPERTS * 3 * D * FFN
    active = params - expert_params * (EXPERTS - TOP_K) // EXPERTS
    assert active == 12_879_925_248  # Mistral AI: 12.9B per token; the paper: "13B active"


# ---------------------------------------------------------------- template vs trace
@pytest.mark.trace
@pytest.mark.parametrize("phase,batch,seq_len,kv_len", [
    ("prefill", 1, 77, 0), ("prefill", 2, 19, 0), ("decode", 2, 1, 300)])
def test_shipped_template_equals_a_fresh_trace(phase, batch, seq_len, kv_len):
    check_shipped_template(MODEL, phase, batch=batch, seq_len=seq_len, kv_len=kv_len)


# ---------------------------------------------------------------- every target, no torch
TARGETS = ("roofline", "ascend", "volta", "armv8", "spatten")
SIZES = {"prefill": {"seq_len": 256}, "decode": {"seq_len": 1, "kv_len": 1024}}
# 46.7B parameters in fp16 are 86.99 GiB: more than a V100's 32 GiB, a 910B's 64 GiB
# or SpAtten's 8 GiB (a Kunpeng 920 socket's 256 GiB of DDR holds them). Where a
# preset refuses, the test checks the one-line refusal and simulates the remedy:
# tensor parallelism where the target has links, more memory where it has none.
REMEDY = {"roofline": {"devices": 4}, "volta": {"devices": 4}, "ascend": {"devices": 2},
          "spatten": {"sets": ["target.dram_bytes=128 GiB"]}}

# What the test reads from each run: the model's weights, the moe_experts nodes left
# unexpanded and the experts' GEMMs.
MEASURE = """
    def measure(r):
        kinds = list(r.ops["kind"])
        return {"weights": r.memory["weights_bytes"], "moe_left": kinds.count("moe_experts"),
                "expert_matmuls": sum(1 for k, n in zip(kinds, r.ops["name"])
                                      if k == "matmul" and n.startswith("experts."))}
"""


def test_mixtral_runs_on_every_target_without_torch():
    cases = []
    for phase, size in SIZES.items():
        for target in TARGETS:
            base = {"model": MODEL, "phase": phase, "size": size, "target": target}
            if target in REMEDY:
                cases.append({**base, "expect_refusal": True})
            cases.append({**base, **REMEDY.get(target, {})})
    flops_seen: dict[str, set] = {}
    for run in simulate_without_torch(cases, MEASURE):
        where = f"{run['phase']} on {run['target']}"
        if not simulated(run, where):
            continue
        assert run["moe_left"] == 0, where  # expanded before any target costs it
        if "devices" not in run:
            # balanced routing: 256 prefill tokens x top-2 reach all 8 experts, one decode
            # token 2 of them; each runs its up (gate and up) and down GEMMs, in 32 layers
            assert run["expert_matmuls"] == 32 * 2 * (8 if run["phase"] == "prefill" else 2)
            # every expert's weights are held, whatever the routing: 46.7B x 2 bytes
            assert run["weights"] == 2 * 46_702_792_704, where
            flops_seen.setdefault(run["phase"], set()).add(run["flops"])
    # the counted FLOPs are the graph's, whichever target runs it
    assert all(len(v) == 1 for v in flops_seen.values()), flops_seen
    assert set(flops_seen) == {"prefill", "decode"}


# ---------------------------------------------------------------- your own MoE config
# A Mixtral of other sizes: 2 layers, d = 256, 4 heads over 2 KV heads of 64,
# 4 experts of width 512, top-2, vocabulary 1000.
SMALL_MIXTRAL = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 256,
    "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
    "vocab_size": 1000, "max_position_embeddings": 4096, "hidden_act": "silu",
    "rms_norm_eps": 1e-5, "rope_theta": 1e6, "sliding_window": None,
    "tie_word_embeddings": False}

# A Qwen2-MoE of other sizes: 3 layers (layer 1 a dense MLP through mlp_only_layers),
# 6 routed experts of width 64, top-3 without renormalisation, and a shared expert
# of width 192 behind a sigmoid gate in every MoE layer; dense MLP width 320.
SMALL_QWEN2_MOE = {
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 128,
    "intermediate_size": 320, "moe_intermediate_size": 64,
    "shared_expert_intermediate_size": 192, "num_experts": 6, "num_experts_per_tok": 3,
    "norm_topk_prob": False, "decoder_sparse_step": 1, "mlp_only_layers": [1],
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 500, "max_position_embeddings": 2048, "hidden_act": "silu",
    "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "use_sliding_window": False}



def _config(tmp_path: Path, name: str, cfg: dict) -> Path:
    path = tmp_path / name / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


@pytest.mark.trace
def test_a_small_mixtral_config_traces_and_simulates_from_its_path(tmp_path, model_cache):
    pytest.importorskip("transformers")
    import hwsim

    path = _config(tmp_path, "my-mixtral", SMALL_MIXTRAL)
    s, d, kv, f, e, k, v = 64, 256, 2 * 64, 512, 4, 2, 1000
    g = graph(str(path), seq_len=s)
    layer = (2 * s * d * d + 2 * 2 * s * d * kv + 2 * s * d * d  # q, k, v, o
             + 2 * 2 * s * s * d                                 # Q·Kᵀ and P·V
             + 2 * s * d * e                                     # router
             + s * k * (2 * d * 2 * f + 2 * f * d + 3 * f))      # 2 experts per token
    assert counted(g) == 2 * layer + 2 * d * v
    moe = [op for op in g.ops if op.kind == "moe_experts"]
    assert [(op.layer, op.attrs["experts"], op.attrs["top_k"], op.attrs["ffn"]) for op in moe] \
        == [(0, 4, 2, 512), (1, 4, 2, 512)]
    assert g.header["config"]["experts"] == 4 and g.header["config"]["experts_per_token"] == 2
    r = hwsim.simulate(workload_from_dict({"model": str(path), "seq_len": s}), "roofline",
                       fidelity="analytical")
    assert r.totals["latency_s"] > 0 and "moe_experts" not in set(r.ops["kind"])
    # the template is cached: another size instantiates it without tracing
    assert any(model_cache.rglob("*.json.gz"))
    g2 = graph(str(path), seq_len=2 * s)
    assert {op.attrs["tokens"] for op in g2.ops if op.kind == "moe_experts"} == {2 * s}


@pytest.mark.trace
def test_a_small_qwen2_moe_config_keeps_its_shared_expert_and_dense_layer(tmp_path, model_cache):
    pytest.importorskip("transformers")
    import hwsim

    path = _config(tmp_path, "my-qwen2-moe", SMALL_QWEN2_MOE)
    s, d, kv, e, k, f, shared, dense, v = 32, 128, 2 * 32, 6, 3, 64, 192, 320, 500
    g = graph(str(path), seq_len=s)
    # q, k, v, o (Qwen2's q/k/v biases ride on the GEMMs: addmm, no extra matmul FLOPs),
    # Q·Kᵀ and P·V
    attn = 2 * s * d * d + 2 * 2 * s * d * kv + 2 * s * d * d + 2 * 2 * s * s * d
    moe_layer = (attn
                 + 3 * 2 * s * d * shared   # shared expert: gate, up, down (an MLP)
                 + 2 * s * d * 1            # shared_expert_gate: hidden -> 1
                 + 2 * s * d * e            # router
                 + s * k * (2 * d * 2 * f + 2 * f * d + 3 * f))
    dense_layer = attn + 3 * 2 * s * d * dense
    assert counted(g) == 2 * moe_layer + dense_layer + 2 * d * v
    moe = [op for op in g.ops if op.kind == "moe_experts"]
    assert [op.layer for op in moe] == [0, 2]
    assert {(op.attrs["experts"], op.attrs["top_k"], op.attrs["ffn"]) for op in moe} == {
        (6, 3, 64)}
    # without norm_topk_prob the top-3 probabilities go to the experts as they are
    router = [op.kind for op in g.ops if op.layer == 0 and op.module.endswith("mlp.gate")]
    assert "reduce" not in router and router.count("topk") == 1
    r = hwsim.simulate(workload_from_dict({"model": str(path), "seq_len": s}), "roofline",
                       fidelity="analytical")
    assert r.totals["latency_s"] > 0 and "moe_experts" not in set(r.ops["kind"])


SMALL_QWEN3_MOE = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 64,
    "intermediate_size": 160, "moe_intermediate_size": 32, "num_experts": 8,
    "num_experts_per_tok": 2, "norm_topk_prob": True, "head_dim": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
    "max_position_embeddings": 512, "hidden_act": "silu", "tie_word_embeddings": False}
SMALL_OLMOE = {
    "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe", "hidden_size": 64,
    "intermediate_size": 48, "num_experts": 16, "num_experts_per_tok": 4,
    "norm_topk_prob": False, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4, "vocab_size": 100, "eos_token_id": 1, "pad_token_id": 1,
    "max_position_embeddings": 512, "hidden_act": "silu", "tie_word_embeddings": False}


@pytest.mark.trace
@pytest.mark.parametrize("cfg,experts,top_k,ffn,renormalised", [
    (SMALL_QWEN3_MOE, 8, 2, 32, True), (SMALL_OLMOE, 16, 4, 48, False)],
    ids=["qwen3-moe", "olmoe"])
def test_qwen3_moe_and_olmoe_experts_are_moe_experts_ops(tmp_path, cfg, experts, top_k, ffn,
                                                         renormalised):
    pytest.importorskip("transformers")
    from hwsim.trace import trace

    s = 12
    g = trace(str(_config(tmp_path, cfg["model_type"], cfg)), seq_len=s)
    moe = [op for op in g.ops if op.kind == "moe_experts"]
    assert [op.layer for op in moe] == [0, 1]
    assert all(op.attrs == {"tokens": s, "hidden": 64, "ffn": ffn, "experts": experts,
                            "top_k": top_k, "act": "silu", "gated": True} for op in moe)
    assert all(flops(op) == s * top_k * (2 * 64 * 2 * ffn + 2 * ffn * 64 + 3 * ffn)
               for op in moe)
    router = [op.kind for op in g.ops if op.layer == 0 and op.module.endswith("mlp.gate")]
    assert router.count("topk") == 1 and ("reduce" in router) == renormalised


@pytest.mark.trace
def test_eager_and_sdpa_give_the_same_mixtral_and_the_model_is_left_as_it_was():
    pytest.importorskip("transformers")
    from hwsim.trace import trace
    from hwsim.trace import zoo as tracer_zoo
    from hwsim.trace.recorder import Recorder
    from hwsim.trace.template import compare

    eager = trace(MODEL, seq_len=16, layers=2, attn_implementation="eager")
    assert compare(eager, trace(MODEL, seq_len=16, layers=2)) == []
    prepared = tracer_zoo.prepare(MODEL, phase="prefill", batch=1, seq_len=4, kv_len=0,
                                  dtype="fp16", attn_implementation="sdpa", layers=1)
    experts = prepared.model.model.layers[0].mlp.experts
    recorder = Recorder(prepared.model)
    with recorder.recording():
        assert "forward" in vars(experts)  # the leaf's stand-in, for the recording only
    assert "forward" not in vars(experts)


@pytest.mark.trace
def test_an_experts_layout_hwsim_cannot_represent_is_one_line(tmp_path, model_cache):
    """An experts bank stored transposed (as some architectures do) is refused before the
    forward runs, naming the module and what differs; never costed as something else."""
    pytest.importorskip("transformers")
    import torch

    from hwsim.errors import InputError
    from hwsim.trace import moe

    class OddExperts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_up_proj = torch.nn.Parameter(torch.empty(4, 16, 2 * 32))
            self.down_proj = torch.nn.Parameter(torch.empty(4, 32, 16))
            self.is_transposed = True

    m = OddExperts()
    assert moe.is_experts(m)
    with pytest.raises(InputError, match=r"blocks\.0\.experts \(OddExperts\): its weights are "
                                         r"stored transposed"):
        moe.experts_attrs(m, "blocks.0.experts")
    m.is_transposed = False
    with pytest.raises(InputError, match=r"expected \[experts, 2\*ffn, hidden\]"):
        moe.experts_attrs(m, "blocks.0.experts")


# ---------------------------------------------------------------- example workloads
def test_example_decode_reads_two_experts_and_holds_eight():
    import hwsim

    r = hwsim.simulate(ROOT / "workloads" / "mixtral-8x7b-decode.yaml", "roofline",
                       fidelity="analytical")
    assert r.devices == 4
    # per device (tensor-parallel over 4): q/k/v/o and every expert's gate/up rows and
    # down columns in quarters; embeddings, LM head, router and norms replicated
    f4 = FFN // 4
    layer = (2 * D * D + 2 * D * KV_DIM) // 4 + EXPERTS * D + 2 * D + EXPERTS * 3 * D * f4
    assert r.memory["weights_bytes"] == 2 * (LAYERS * layer + 2 * VOCAB * D + D) \
        == 23_746_584_576
    # one token, top-2: in each layer 2 experts run, each reading its quarter of w_in
    # (2·f4 x D) and w_out (D x f4), and the token's row (D) and activations (f4)
    ops = r.ops[(r.ops["kind"] == "matmul") & r.ops["name"].str.startswith("experts.")]
    assert len(ops) == LAYERS * 2 * 2
    per_expert = 2 * (2 * f4 * D + D * f4 + D + f4)
    assert int(ops["dram_read_bytes"].sum()) == LAYERS * 2 * per_expert == 5_638_127_616


def test_example_prefill_reaches_every_expert_and_a_skewed_router_costs_time():
    import hwsim

    wl = ROOT / "workloads" / "mixtral-8x7b-prefill.yaml"
    flat = hwsim.simulate(wl, "volta", fidelity="analytical")
    skew = hwsim.simulate(wl, "volta", sets=["routing.mode=skew", "routing.alpha=1.2"],
                          fidelity="analytical")
    for r in (flat, skew):  # 2,048 tokens x top-2 reach all 8 experts in all 32 layers
        ops = r.ops[(r.ops["kind"] == "matmul") & r.ops["name"].str.startswith("experts.")]
        assert len(ops) == LAYERS * EXPERTS * 2
    # the same FLOPs (every token runs 2 expert FFNs whoever the experts are); the
    # busiest experts' GEMMs under the skew take longer than the balanced ones save
    assert skew.totals["flops"] == flat.totals["flops"]
    assert skew.totals["latency_s"] > flat.totals["latency_s"]
