"""Context limits: the positions a model handles, from its published dims or config
(RoPE scaling counts), and the warning a longer workload gets."""

from __future__ import annotations

import json

import pytest

from hwsim import zoo
from hwsim.workload import load_workload, workload_from_dict


@pytest.mark.parametrize("model,limit,why", [
    ("gpt2", 1024, "position table"),
    ("bert-base", 512, "position table"),
    ("llama-2-7b", 4096, "position table"),
    ("tinyllama-1.1b", 2048, "position table"),
    ("llava-1.5-7b", 4096, "position table"),
    # Llama-3.1: 8,192 pre-training positions stretched by llama3 RoPE scaling to 128K
    ("llama-3.1-8b", 131_072, "llama3 RoPE scaling, factor 8 over 8,192"),
    ("llama-3.2-1b", 131_072, "llama3 RoPE scaling, factor 32 over 8,192"),
    ("mistral-7b-v0.1", 32_768, "max_position_embeddings 32,768"),
    ("qwen2.5-7b", 131_072, "max_position_embeddings 131,072"),
])
def test_context_limits_of_the_zoo(model, limit, why):
    got, reason = zoo.context_limit(model)
    assert got == limit and why in reason


def test_a_vit_has_no_position_limit():
    assert zoo.context_limit("vit-base") == (None, "no stated limit")


def wl(**fields):
    return workload_from_dict(fields)


@pytest.mark.parametrize("fields,warned", [
    ({"model": "gpt2", "seq_len": 1024}, False),
    ({"model": "gpt2", "seq_len": 1025}, True),
    ({"model": "gpt2", "phase": "decode", "seq_len": 1, "kv_len": 1023}, False),
    ({"model": "gpt2", "phase": "decode", "seq_len": 1, "kv_len": 1024}, True),
    ({"model": "llama-2-7b", "seq_len": 8192}, True),
    ({"model": "llama-3.1-8b", "seq_len": 8192}, False),  # 128K through RoPE scaling
    ({"model": "llama-3.1-8b", "seq_len": 131_072}, False),
    ({"model": "llama-3.1-8b", "phase": "decode", "seq_len": 1, "kv_len": 131_072}, True),
    ({"model": "mistral-7b-v0.1", "seq_len": 32_769}, True),
    ({"model": "vit-base", "seq_len": 100_000}, False),
    ({"ops": [{"kind": "matmul", "m": 8, "n": 8, "k": 8}], "seq_len": 10**6}, False),
])
def test_context_warnings(fields, warned):
    got = zoo.context_warnings(wl(**fields))
    assert bool(got) == warned
    if warned:
        (line,) = got
        assert "\n" not in line and fields["model"] in line
        tokens = fields["seq_len"] + fields.get("kv_len", 0)
        assert f"{tokens:,} tokens" in line
        limit, _ = zoo.context_limit(fields["model"])
        assert f"{limit:,} positions" in line


def test_gpt2_warning_names_its_table():
    (line,) = zoo.context_warnings(wl(model="gpt2", seq_len=2048))
    assert line.startswith("2,048 tokens (2,048 prompt) exceed the context of gpt2: 1,024 "
                           "positions (the model's position table)")


def test_a_config_model_warns_from_its_config(tmp_path):
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 256,
           "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": 100, "max_position_embeddings": 32768,
           "rope_scaling": {"type": "yarn", "factor": 4.0,
                            "original_max_position_embeddings": 32768}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "wl.yaml").write_text("model: config.json\nseq_len: 100000\n")
    w = load_workload(tmp_path / "wl.yaml")
    assert zoo.context_limit(w.model)[0] == 131_072  # YaRN: 32,768 x 4
    assert zoo.context_warnings(w) == []
    (line,) = zoo.context_warnings(load_workload(tmp_path / "wl.yaml", [("seq_len", 140000)]))
    assert "131,072 positions (max_position_embeddings 32,768 with yarn RoPE scaling" in line


def test_a_trace_file_warns_from_its_header(tmp_path):
    from conftest import tiny_graph

    from hwsim.ir import save

    graph = tiny_graph(1, 8)
    graph.header["config"] = {"max_positions": 512}
    save(graph, tmp_path / "mine.json.gz")
    (tmp_path / "wl.yaml").write_text("trace: mine.json.gz\nseq_len: 600\n")
    w = load_workload(tmp_path / "wl.yaml")
    (line,) = zoo.context_warnings(w, graph.header)
    assert "exceed the context of tiny-llm: 512 positions (the trace's header)" in line
    assert zoo.context_warnings(load_workload(tmp_path / "wl.yaml", [("seq_len", 500)]),
                                graph.header) == []
