"""Any transformers config as a model: a config.json path, its folder, or a Hugging Face
id in the local cache; traced once into a cached template; clear errors otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from no_torch import run_without_torch

from hwsim import zoo
from hwsim.cli.main import main
from hwsim.errors import InputError
from hwsim.trace import hfconfig, hub
from hwsim.workload import build_graph, load_workload
from hwsim.workload.logits import select_logits

ROOT = Path(__file__).resolve().parents[1]

# Phi-3-mini (an architecture the zoo does not have): the model card's config.json,
# https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/config.json
PHI3_MINI = {
    "architectures": ["Phi3ForCausalLM"], "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config",
                 "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
    "bos_token_id": 1, "embd_pdrop": 0.0, "eos_token_id": 32000, "hidden_act": "silu",
    "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
    "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.2", "use_cache": True,
    "attention_bias": False, "vocab_size": 32064}

# A Qwen2 of other sizes (Qwen2's architecture: q/k/v biases, GQA), small to trace fast.
SMALL_QWEN2 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 512,
    "intermediate_size": 1376, "num_hidden_layers": 4, "num_attention_heads": 8,
    "num_key_value_heads": 2, "max_position_embeddings": 8192, "vocab_size": 1000,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False,
    "use_sliding_window": False, "sliding_window": 8192}

# The workload at sys.argv[1] simulated with torch and transformers hidden: its FLOPs.
SIMULATE = """
    import hwsim
    r = hwsim.simulate(sys.argv[1], "roofline", fidelity="analytical")
    result = r.totals["flops"]
"""



def write(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


def workload(tmp_path: Path, name: str = "wl.yaml", **fields) -> Path:
    p = tmp_path / name
    p.write_text("".join(f"{k}: {v}\n" for k, v in fields.items()), encoding="utf-8")
    return p


def matmul_attention(g) -> int:
    by_kind = g.flops_by_kind()
    return by_kind["matmul"] + by_kind["attention"]


def hub_snapshot(root: Path, model_id: str, revision: str, config: dict) -> Path:
    repo = root / ("models--" + model_id.replace("/", "--"))
    return write(repo / "snapshots" / revision / "config.json", config)


# ---------------------------------------------------------------- without torch
def test_config_facts_need_no_torch():
    head = hfconfig.headline(PHI3_MINI)
    assert (head["kind"], head["layers"], head["heads"], head["kv_heads"], head["head_dim"],
            head["hidden"], head["ffn"], head["vocab"]) == (
        "causal-lm", 32, 32, 32, 96, 3072, 8192, 32064)
    assert head["max_positions"] == 4096 and head["window"] == 2047
    assert hfconfig.phases(PHI3_MINI) == ("prefill", "decode")
    bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 768,
            "num_attention_heads": 12, "num_hidden_layers": 12, "max_position_embeddings": 512}
    assert hfconfig.kind(bert) == "encoder" and hfconfig.phases(bert) == ("prefill",)
    assert hfconfig.kind({"model_type": "t5", "is_encoder_decoder": True}) == "encoder-decoder"
    assert hfconfig.digest(PHI3_MINI) == hfconfig.digest(dict(reversed(PHI3_MINI.items())))


def test_context_limit_counts_rope_scaling():
    # Qwen2.5's long-context recipe (its model cards): YaRN, factor 4 over 32,768 positions
    yarn = {**SMALL_QWEN2, "max_position_embeddings": 32768,
            "rope_scaling": {"type": "yarn", "factor": 4.0,
                             "original_max_position_embeddings": 32768}}
    assert hfconfig.context_limit(yarn)[0] == 131_072
    linear = {**SMALL_QWEN2, "max_position_embeddings": 2048,
              "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    assert hfconfig.context_limit(linear)[0] == 4096
    # llama3 states the extended table itself: 8,192 x 8 = 65,536 < 131,072 stated
    llama3 = {**SMALL_QWEN2, "max_position_embeddings": 131072,
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                               "original_max_position_embeddings": 8192}}
    assert hfconfig.context_limit(llama3)[0] == 131_072
    assert hfconfig.context_limit({"model_type": "gpt2", "n_positions": 1024})[0] == 1024
    assert hfconfig.context_limit({"model_type": "x"})[0] is None


def test_hub_id_is_found_in_the_local_cache(model_cache, tmp_path):
    hf = tmp_path / "hf-hub"
    old = hub_snapshot(hf, "acme/tiny-qwen", "aaa111", SMALL_QWEN2)
    newer = hub_snapshot(hf, "acme/tiny-qwen", "bbb222", {**SMALL_QWEN2, "num_hidden_layers": 2})
    os.utime(old, (1, 1))
    assert hub.hub_config_path("acme/tiny-qwen") == newer  # the newest snapshot ...
    (hf / "models--acme--tiny-qwen" / "refs").mkdir()
    (hf / "models--acme--tiny-qwen" / "refs" / "main").write_text("aaa111")
    assert hub.hub_config_path("acme/tiny-qwen") == old  # ... unless refs/main says
    source = hub.resolve("acme/tiny-qwen")
    assert source.origin == "hub" and source.config["num_hidden_layers"] == 4
    assert zoo.phases("acme/tiny-qwen") == ("prefill", "decode")
    assert zoo.num_layers("acme/tiny-qwen") == 4


def test_hf_home_and_xdg_cache_are_honoured(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.hf_cache_dirs()[-1] == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    hub_snapshot(tmp_path / "home" / "hub", "org/m", "r1", SMALL_QWEN2)
    assert hub.hub_config_path("org/m") == tmp_path / "home/hub/models--org--m/snapshots/r1" \
        / "config.json"


@pytest.mark.parametrize("model,expected", [
    ("nobody/no-such-model", "never downloads: put its config.json at"),
    ("missing/config.json", "config file not found"),
    ("empty-folder", "holds no config.json"),
    ("bad.json", "not valid JSON"),
    ("no-type.json", "expected a transformers config with a model_type"),
    ("t5.json", "encoder-decoder model"),
])
def test_a_config_that_cannot_be_read_is_one_clear_line(model_cache, tmp_path, capsys, model,
                                                          expected):
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    write(tmp_path / "no-type.json", {"hidden_size": 8})
    write(tmp_path / "t5.json", {"architectures": ["T5ForConditionalGeneration"],
                                 "model_type": "t5", "is_encoder_decoder": True})
    wl = workload(tmp_path, model=model)
    assert main(["simulate", str(wl)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hwsim: error: ") and "Traceback" not in err
    assert expected in err and "model" in err
    if model.startswith("nobody/"):
        assert str(tmp_path / "hf-hub" / "models--nobody--no-such-model" / "snapshots") in err


def test_hwsim_models_lists_the_zoo_and_configs(model_cache, tmp_path, capsys):
    phi = write(tmp_path / "phi3" / "config.json", PHI3_MINI)
    assert main(["models", str(phi.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["model", "layers", "heads/kv"] and "context" in header
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "llama-3.1-8b" in rows and "llava-1.5-7b" in rows
    assert "32/8" in rows["llama-3.1-8b"] and "131,072 (RoPE llama3)" in rows["llama-3.1-8b"]
    assert rows["llama-3.1-8b"].rstrip().endswith("shipped")
    assert "4,096, window 2,047" in rows[str(phi.parent)]
    assert rows[str(phi.parent)].rstrip().endswith("traced on demand")
    assert main(["models", "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mistral = next(d for d in docs if d["model"] == "mistral-7b-v0.1")
    assert (mistral["layers"], mistral["kv_heads"], mistral["window"],
            mistral["max_positions"]) == (32, 8, 4096, 32768)
    assert main(["models", "nobody/missing"]) == 2


# ---------------------------------------------------------------- traced (torch)
PHI3_S = 2048
PHI3_D, PHI3_FFN, PHI3_VOCAB = 3072, 8192, 32064
PHI3_LAYER = (2 * PHI3_S * PHI3_D * (3 * PHI3_D)      # qkv_proj: Q, K, V fused (32 KV heads)
              + 2 * PHI3_S * PHI3_D * PHI3_D          # o_proj
              + 2 * PHI3_S * PHI3_D * (2 * PHI3_FFN)  # gate_up_proj: gate and up fused
              + 2 * PHI3_S * PHI3_FFN * PHI3_D        # down_proj
              + 4 * PHI3_S * PHI3_S * PHI3_D)         # Q·Kᵀ and P·V, full square
PHI3_2048 = 32 * PHI3_LAYER + 2 * PHI3_D * PHI3_VOCAB  # LM head on the last position


@pytest.mark.trace
def test_phi3_config_simulates_from_its_path(model_cache, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    write(tmp_path / "models" / "phi3-mini.json", PHI3_MINI)
    # a path relative to the workload file's folder
    wl_path = workload(tmp_path, model="models/phi3-mini.json", seq_len=PHI3_S)
    wl = load_workload(wl_path)
    assert wl.model == str(tmp_path / "models" / "phi3-mini.json")
    g = select_logits(build_graph(wl), wl.logits)
    assert matmul_attention(g) == PHI3_2048 == 16_492_871_417_856
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert len(att) == 32 and all(a["window"] == 2047 and a["causal"] for a in att)
    assert g.header["stacks"] == {"decoder": {"first_layer": 0, "num_layers": 32}}
    cached = sorted(model_cache.glob("phi3-mini.prefill.template.*.json.gz"))
    assert len(cached) == 1 and hfconfig.digest(PHI3_MINI) in cached[0].name

    # later runs, at any size, read the cached template: no tracing
    import hwsim.trace.cache as trace_cache

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced again instead of reading the cached template")

    monkeypatch.setattr("hwsim.trace.template.trace_template", no_tracing)
    monkeypatch.setattr(trace_cache, "trace", no_tracing)
    zoo.template.cache_clear()
    longer = select_logits(build_graph(load_workload(wl_path, [("seq_len", 3000)])), "last")
    assert longer.flops_by_kind()["attention"] == 32 * 4 * 3000 * 3000 * PHI3_D
    # the same config at another path is the same template
    write(tmp_path / "elsewhere" / "config.json", PHI3_MINI)
    zoo.template.cache_clear()
    again = build_graph(load_workload(workload(tmp_path, "w2.yaml", model="elsewhere",
                                               seq_len=PHI3_S)))
    assert matmul_attention(select_logits(again, "last")) == PHI3_2048

    # ... and without torch
    assert run_without_torch(SIMULATE, wl_path, cwd=tmp_path, timeout=300) == g.flops()


@pytest.mark.trace
def test_a_qwen2_of_other_sizes_from_its_folder_and_an_edit_retraces(model_cache, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    folder = tmp_path / "qwen2-small"
    write(folder / "config.json", SMALL_QWEN2)
    for phase, size in (("prefill", {"seq_len": 100}), ("decode", {"seq_len": 1,
                                                                   "kv_len": 300})):
        wl = load_workload(workload(tmp_path, model=str(folder), phase=phase, **size))
        g = build_graph(wl)
        att = [op.attrs for op in g.ops if op.kind == "attention"]
        assert [(a["heads"], a["kv_heads"], a["head_dim"]) for a in att] == [(8, 2, 64)] * 4
        biased = {op.name for op in g.ops if op.kind == "matmul" and op.attrs.get("bias")}
        assert biased == {"q_proj", "k_proj", "v_proj"}
        if phase == "decode":
            assert {a["kv_len"] for a in att} == {301}
    assert len(list(model_cache.glob("qwen2-small.*.template.*.json.gz"))) == 2
    # an edited config is another model: traced again, with its new depth
    write(folder / "config.json", {**SMALL_QWEN2, "num_hidden_layers": 2})
    g = build_graph(load_workload(workload(tmp_path, model=str(folder), seq_len=100)))
    assert sum(op.kind == "attention" for op in g.ops) == 2
    assert len(list(model_cache.glob("qwen2-small.prefill.template.*.json.gz"))) == 2


@pytest.mark.trace
def test_a_hub_id_simulates_and_an_encoder_has_no_decode(model_cache, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    hub_snapshot(tmp_path / "hf-hub", "acme/tiny-qwen", "abc", SMALL_QWEN2)
    wl = workload(tmp_path, model="acme/tiny-qwen", seq_len=64)
    assert main(["simulate", str(wl), "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["workload"]["model"] == "acme/tiny-qwen" and doc["totals"]["flops"] > 0
    bert = write(tmp_path / "bert" / "config.json", {
        "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 128,
        "num_attention_heads": 2, "num_hidden_layers": 2, "intermediate_size": 512,
        "max_position_embeddings": 512, "vocab_size": 1000})
    g = build_graph(load_workload(workload(tmp_path, "b.yaml", model=str(bert), seq_len=32)))
    assert g.header["stacks"] == {"encoder": {"first_layer": 0, "num_layers": 2}}
    assert not any(op.kind == "kv_write" for op in g.ops)
    with pytest.raises(InputError, match="no decode phase"):
        load_workload(workload(tmp_path, "b2.yaml", model=str(bert), phase="decode",
                               seq_len=1, kv_len=8))


@pytest.mark.trace
def test_a_model_type_transformers_does_not_know_is_one_line(model_cache, tmp_path, capsys):
    pytest.importorskip("transformers")
    import transformers

    write(tmp_path / "odd.json", {**SMALL_QWEN2, "model_type": "no-such-arch",
                                  "architectures": ["NoSuchArchForCausalLM"]})
    assert main(["simulate", str(workload(tmp_path, model="odd.json"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"transformers {transformers.__version__} has no model type 'no-such-arch'" in err
    assert "never runs remote code" in err


def test_hwsim_models_needs_no_torch(tmp_path):
    out = run_without_torch("""
        import contextlib, io
        from hwsim.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            rc = main(["models", "--json"])
        result = {"rc": rc, "rows": printed.getvalue().splitlines()}
    """, cwd=tmp_path, timeout=120)
    assert out["rc"] == 0
    models = {json.loads(r)["model"]: json.loads(r) for r in out["rows"]}
    assert models["llama-3.1-70b"]["template"] == "shipped"
    assert (models["qwen2.5-7b"]["heads"], models["qwen2.5-7b"]["kv_heads"]) == (28, 4)


@pytest.mark.trace
def test_a_config_whose_forward_fails_on_fake_tensors_is_one_line(model_cache, tmp_path, capsys,
                                                                  monkeypatch):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")

    def broken(self, *args, **kwargs):
        raise RuntimeError("needs\nreal values")

    monkeypatch.setattr(transformers.Qwen2ForCausalLM, "forward", broken)
    write(tmp_path / "q.json", SMALL_QWEN2)
    assert main(["simulate", str(workload(tmp_path, model="q.json", seq_len=32))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"hwsim cannot trace {tmp_path / 'q.json'} from its config" in err
    assert "RuntimeError: needs real values" in err
