"""Tracing models into graphs: FLOPs against hand counts, structure, fusions, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hwsim.errors import InputError  # noqa: E402
from hwsim.ir import to_dict  # noqa: E402
from hwsim.trace import ZOO_NAMES, cached_trace, trace  # noqa: E402

pytestmark = pytest.mark.trace

ROOT = Path(__file__).resolve().parents[1]

# 32·(8sd² + 6sdm + 4s²d) + 2sdV, d=4096, m=11008, V=32000, s=2048
LLAMA_7B_2048 = 29_261_612_187_648


def matmul_attention_flops(g) -> int:
    by_kind = g.flops_by_kind()
    return by_kind.get("matmul", 0) + by_kind.get("attention", 0)


@pytest.fixture(scope="module")
def llama7b():
    import transformers.models.llama.modeling_llama  # noqa: F401 - imports are not timed

    start = time.perf_counter()
    g = trace("llama-2-7b", seq_len=2048, phase="prefill")
    print(f"\nllama-2-7b prefill 2048 traced in {time.perf_counter() - start:.2f} s "
          f"({len(g.ops)} ops)")
    return g


@pytest.fixture(autouse=True)
def user_models_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


# ---------------------------------------------------------------- llama-2-7b
def test_llama_7b_prefill_flops_equal_the_hand_count(llama7b):
    assert matmul_attention_flops(llama7b) == LLAMA_7B_2048
    s, d = 2048, 4096
    assert llama7b.flops_by_kind()["attention"] == 32 * 4 * s * s * d


def test_llama_7b_graph_verifies(llama7b):
    assert llama7b.verify() == []


def test_llama_7b_ops_are_canonical(llama7b):
    kinds = Counter(op.kind for op in llama7b.ops)
    assert kinds == {"matmul": 7 * 32 + 1, "attention": 32, "rmsnorm": 2 * 32 + 1,
                     "rope": 2 * 32, "kv_write": 2 * 32, "elementwise": 5 * 32,
                     "embedding": 1}
    fns = Counter(op.attrs["fn"] for op in llama7b.ops if op.kind == "elementwise")
    assert fns == {"add": 64, "silu": 32, "mul": 32, "copy": 32}
    att = next(op for op in llama7b.ops if op.kind == "attention")
    assert att.attrs == {"batch": 1, "heads": 32, "kv_heads": 32, "head_dim": 128,
                         "q_len": 2048, "kv_len": 2048, "causal": True}


def test_llama_7b_layers_and_modules(llama7b):
    for op in llama7b.ops:
        assert op.module, op.line()
        parts = op.module.split(".")
        if parts[:2] == ["model", "layers"]:
            assert op.layer == int(parts[2]), op.line()
        else:
            assert op.layer is None, op.line()
    per_layer = Counter(op.layer for op in llama7b.ops if op.layer is not None)
    assert sorted(per_layer) == list(range(32))
    assert len(set(per_layer.values())) == 1
    assert llama7b.header["stacks"] == {"decoder": {"first_layer": 0, "num_layers": 32}}
    names = [op.name for op in llama7b.ops if op.layer == 3]
    assert names[:10] == ["input_layernorm", "q_proj", "k_proj", "v_proj", "self_attn.rope_q",
                          "self_attn.rope_k", "self_attn.kv_write_k", "self_attn.kv_write_v",
                          "self_attn.attention", "self_attn.copy"]


def test_llama_7b_header(llama7b):
    h = llama7b.header
    assert (h["model"], h["phase"], h["batch"], h["seq_len"], h["kv_len"], h["dtype"]) == (
        "llama-2-7b", "prefill", 1, 2048, 0, "fp16")
    assert h["segments"] == {}
    assert h["config"] == {"hidden": 4096, "heads": 32, "kv_heads": 32, "head_dim": 128,
                           "ffn": 11008, "layers": 32, "vocab": 32000}
    assert set(h["traced_with"]) == {"torch", "transformers"}


def test_rope_reads_the_projection_and_the_rotary_tables(llama7b):
    rope = [op for op in llama7b.ops if op.kind == "rope" and op.layer == 0]
    q_proj = next(op for op in llama7b.ops if op.module == "model.layers.0.self_attn.q_proj")
    assert rope[0].inputs[0] == q_proj.outputs[0]
    tables = [llama7b.tensors[t] for t in rope[0].inputs[1:]]
    assert [(t.kind, t.shape) for t in tables] == [("input", (1, 2048, 128))] * 2
    later = next(op for op in llama7b.ops if op.kind == "rope" and op.layer == 31)
    assert later.inputs[1:] == rope[0].inputs[1:]  # one cos/sin table for all layers


# ---------------------------------------------------------------- eager vs sdpa
@pytest.mark.parametrize("model,phase,seq_len,kv_len", [
    ("gpt2", "prefill", 24, 0), ("gpt2", "decode", 1, 9), ("bert-base", "prefill", 24, 0),
    ("llama-2-7b", "prefill", 24, 0), ("vit-base", "prefill", 17, 0),
])
def test_eager_and_sdpa_give_the_same_graph(model, phase, seq_len, kv_len):
    kw = dict(seq_len=seq_len, phase=phase, kv_len=kv_len, batch=2, layers=2)
    sdpa = trace(model, attn_implementation="sdpa", **kw)
    eager = trace(model, attn_implementation="eager", **kw)
    attention = [(op.attrs, op.inputs, op.module) for op in sdpa.ops if op.kind == "attention"]
    assert len(attention) == 2
    assert attention == [(op.attrs, op.inputs, op.module) for op in eager.ops
                         if op.kind == "attention"]
    assert matmul_attention_flops(sdpa) == matmul_attention_flops(eager)
    assert to_dict(sdpa) == to_dict(eager)
    assert not any(op.kind == "softmax" for op in eager.ops)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("phase,seq_len,kv_len,mask", [
    ("prefill", 12, 0, False), ("decode", 1, 9, False), ("decode", 1, 9, True)])
def test_grouped_query_attention_keeps_its_kv_heads(impl, phase, seq_len, kv_len, mask):
    """16 query heads over 4 KV heads, however HF lays them out (repeat_kv, enable_gqa,
    or SDPA's packing of one query token when a mask is given)."""
    from hwsim.trace import zoo
    from hwsim.trace.api import record

    dims = {"layers": 1, "hidden": 1024, "heads": 16, "kv_heads": 4, "ffn": 2048,
            "max_positions": 4096, "vocab": 1000}
    prepared = zoo._llama(dims, phase=phase, batch=2, seq_len=seq_len, kv_len=kv_len,
                          dtype=torch.float16, attn=impl)
    if mask:
        make = prepared.make_inputs

        def make_with_mask():
            return {**make(), "attention_mask": torch.ones(2, kv_len + seq_len,
                                                           dtype=torch.long, device="meta")}
        prepared.make_inputs = make_with_mask
    g = record(prepared, {"model": "gqa"})
    (att,) = (op for op in g.ops if op.kind == "attention")
    total = kv_len + seq_len
    assert att.attrs == {"batch": 2, "heads": 16, "kv_heads": 4, "head_dim": 64,
                         "q_len": seq_len, "kv_len": total, "causal": True}
    assert [g.tensors[t].shape for t in att.inputs] == [
        (2, 16, seq_len, 64), (2, 4, total, 64), (2, 4, total, 64)]


# ---------------------------------------------------------------- KV cache
def test_decode_writes_the_cache_and_attends_to_it():
    g = trace("llama-2-7b", seq_len=1, phase="decode", kv_len=100, batch=2, layers=3)
    assert g.verify() == []
    writes = [op for op in g.ops if op.kind == "kv_write"]
    assert Counter(op.layer for op in writes) == {0: 2, 1: 2, 2: 2}
    for op in writes:
        new, past = (g.tensors[t] for t in op.inputs)
        full = g.tensors[op.outputs[0]]
        assert past.kind == full.kind == "kv_cache"
        assert past.shape == (2, 32, 100, 128) and full.shape == (2, 32, 101, 128)
        assert op.attrs["elements"] == new.numel == 2 * 4096
    for att in (op for op in g.ops if op.kind == "attention"):
        assert (att.attrs["q_len"], att.attrs["kv_len"]) == (1, 101)
        k_write = next(w for w in writes if w.layer == att.layer and w.name.endswith("_k"))
        v_write = next(w for w in writes if w.layer == att.layer and w.name.endswith("_v"))
        assert att.inputs[1:] == (k_write.outputs[0], v_write.outputs[0])


def test_prefill_of_a_decoder_writes_the_cache():
    g = trace("gpt2", seq_len=32, layers=2)
    writes = [op for op in g.ops if op.kind == "kv_write"]
    assert len(writes) == 4
    assert all(len(op.inputs) == 1 for op in writes)  # nothing in the cache before
    assert all(g.tensors[op.outputs[0]].kind == "kv_cache" for op in writes)
    # GPT-2 splits its fused QKV projection: free slicing views, not copies
    views = [op for op in g.ops if op.kind == "view" and op.layer == 0]
    assert len(views) == 3 and all(op.attrs == {"note": "slice"} for op in views)
    assert g.flops_by_kind().get("view", 0) == 0


def test_an_encoder_has_no_cache():
    g = trace("bert-base", seq_len=64, layers=2)
    assert not any(op.kind == "kv_write" for op in g.ops)
    assert not any(t.kind == "kv_cache" for t in g.tensors.values())
    assert g.header["stacks"] == {"encoder": {"first_layer": 0, "num_layers": 2}}


# ---------------------------------------------------------------- vision models
def vit_flops(layers: int, d: int, ffn: int, s: int, patch: int = 16) -> int:
    patches = s - 1
    per_layer = 2 * s * d * (4 * d + 2 * ffn) + 4 * s * s * d
    return 2 * patches * d * 3 * patch * patch + layers * per_layer


@pytest.mark.parametrize("model,d,ffn", [("vit-base", 768, 3072), ("deit-small", 384, 1536)])
def test_vit_flops_at_197_tokens(model, d, ffn):
    g = trace(model, seq_len=197)
    assert g.verify() == []
    assert matmul_attention_flops(g) == vit_flops(12, d, ffn, 197)
    att = next(op for op in g.ops if op.kind == "attention")
    assert (att.attrs["q_len"], att.attrs["kv_len"], att.attrs["causal"]) == (197, 197, False)


def test_vit_patch_row_is_the_224px_model():
    """The zoo's 1 x 196 patch row gives the FLOPs of the real 224 x 224 ViT-B/16."""
    row = trace("vit-base", seq_len=197, layers=2)
    square = trace("_user_models:vit_224", seq_len=197)
    assert matmul_attention_flops(square) == matmul_attention_flops(row)
    assert Counter(op.kind for op in square.ops) == Counter(op.kind for op in row.ops)


def test_llava_prefill_segments_stacks_and_layers():
    g = trace("llava-1.5-7b", seq_len=640, layers=2)
    assert g.verify() == []
    h = g.header
    assert h["segments"] == {"text": [0, 35], "visual": [35, 611], "question": [611, 640]}
    assert h["stacks"] == {"vision": {"first_layer": 0, "num_layers": 2},
                           "language": {"first_layer": 2, "num_layers": 2}}
    concat = next(op for op in g.ops if op.kind == "concat" and op.layer is None
                  and g.tensors[op.outputs[0]].shape == (1, 640, 4096))
    parts = [g.tensors[t].numel // 4096 for t in concat.inputs]
    assert parts == [35, 576, 29]
    for op in g.ops:
        if "vision_tower.encoder.layers." in op.module:
            assert op.layer in (0, 1), op.line()
        elif "language_model.layers." in op.module:
            assert op.layer in (2, 3), op.line()
        else:
            assert op.layer is None, op.line()
    att = [op.attrs for op in g.ops if op.kind == "attention"]
    assert [(a["q_len"], a["causal"]) for a in att] == [(577, False)] * 2 + [(640, True)] * 2


def test_llava_decode_is_a_language_model_step():
    g = trace("llava-1.5-7b", seq_len=1, phase="decode", kv_len=700, layers=2)
    assert g.header["stacks"] == {"language": {"first_layer": 2, "num_layers": 2}}
    assert {op.layer for op in g.ops} == {None, 2, 3}
    assert not any("vision" in op.module for op in g.ops)
    assert [op.attrs["kv_len"] for op in g.ops if op.kind == "attention"] == [701, 701]


# ---------------------------------------------------------------- user models
@pytest.mark.parametrize("factory", ["_user_models:factory", "_user_models:factory_meta"])
def test_user_factory(factory):
    g = trace(factory, seq_len=16)
    assert g.verify() == []
    batch = 2 if factory.endswith(":factory") else 1
    kinds = Counter(op.kind for op in g.ops)
    assert kinds["attention"] == 2 and "softmax" not in kinds
    assert kinds["topk"] == 1 and kinds["gather"] == 1 and kinds["layernorm"] == 4
    first, second = (op.attrs for op in g.ops if op.kind == "attention")
    assert first == {"batch": batch, "heads": 4, "kv_heads": 4, "head_dim": 16, "q_len": 16,
                     "kv_len": 16, "causal": False}
    assert second["q_len"] == second["kv_len"] == 8  # after keeping the top 8 tokens
    assert g.header["stacks"] == {"blocks": {"first_layer": 0, "num_layers": 2}}
    gather = next(op for op in g.ops if op.kind == "gather")
    scaled = next(op for op in g.ops if op.kind == "elementwise" and op.inputs
                  and op.inputs[0] == gather.outputs[0])
    assert scaled.attrs["fn"] == "mul"  # the in-place x.mul_(0.5), as a fresh tensor
    assert all(g.tensors[t].dtype in ("fp16", "int64") for t in g.tensors)


def test_convolutions_are_im2col_gemms():
    g = trace("_user_models:cnn", seq_len=1)
    assert g.verify() == []
    convs = [op for op in g.ops if op.kind == "matmul"]
    assert [(op.module, op.attrs["m"], op.attrs["n"], op.attrs["k"]) for op in convs] == [
        ("conv", 2 * 32 * 32, 8, 3 * 3 * 3), ("patch", 2 * 4 * 4, 16, 8 * 4 * 4),
        ("fc", 2, 10, 16)]
    # the padded 3x3 reads overlapping windows: its patches are copied first (im2col);
    # the 4x4/4 patchify reads its input as it is
    im2col = [op for op in g.ops if op.kind == "gather"]
    assert [(op.module, op.attrs["elements"]) for op in im2col] == [("conv", 2 * 1024 * 27)]
    assert convs[0].inputs[0] == im2col[0].outputs[0]
    kinds = [(op.kind, op.attrs.get("fn")) for op in g.ops if op.kind in ("reduce",
                                                                           "elementwise")]
    assert kinds == [("elementwise", "fma"), ("elementwise", "relu"), ("reduce", "max"),
                     ("reduce", "mean")]


def test_user_factory_errors():
    with pytest.raises(InputError, match="must return"):
        trace("_user_models:not_a_factory", seq_len=4)
    with pytest.raises(InputError, match="no function"):
        trace("_user_models:missing", seq_len=4)
    with pytest.raises(InputError, match="cannot import"):
        trace("no_such_package_xyz.mod:factory", seq_len=4)
    with pytest.raises(InputError, match="depends on tensor values"):
        trace("_user_models:value_dependent", seq_len=4)


# ---------------------------------------------------------------- inputs and errors
def test_unknown_model_lists_the_zoo():
    with pytest.raises(InputError) as err:
        trace("llama-3-70b", seq_len=8)
    assert err.value.problems[0].field == "model"
    assert "llama-2-7b" in str(err.value) and "llava-1.5-7b" in str(err.value)


@pytest.mark.parametrize("model,kw,field", [
    ("bert-base", {"phase": "decode", "seq_len": 1, "kv_len": 4}, "phase"),
    ("llava-1.5-7b", {"seq_len": 600}, "seq_len"),
    ("bert-base", {"seq_len": 600}, "seq_len"),
    ("gpt2", {"phase": "decode", "seq_len": 1, "kv_len": 0}, "kv_len"),
    ("gpt2", {"seq_len": 8, "kv_len": 3}, "kv_len"),
    ("gpt2", {"seq_len": 0}, "seq_len"),
    ("gpt2", {"seq_len": 8, "dtype": "int3"}, "dtype"),
    ("gpt2", {"seq_len": 8, "phase": "train"}, "phase"),
])
def test_bad_arguments_name_their_field(model, kw, field):
    with pytest.raises(InputError) as err:
        trace(model, **kw)
    assert err.value.problems[0].field == field


def test_dtype_reaches_every_float_tensor():
    g = trace("llama-2-7b", seq_len=8, layers=1, dtype="bf16")
    floats = {t.dtype for t in g.tensors.values() if t.dtype not in ("int64",)}
    assert floats == {"bf16"}


def test_zoo_names_need_no_torch():
    code = ("import sys, hwsim.trace, hwsim.trace.zoo_names as z; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(len(hwsim.trace.ZOO_NAMES), z.phases('gpt2'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(None, 1)[1].strip() == "('prefill', 'decode')"


def test_zoo_has_the_published_models():
    assert {"bert-base", "bert-large", "gpt2", "gpt2-medium", "llama-2-7b", "llama-2-13b",
            "vit-base", "deit-small", "llava-1.5-7b", "minilm-l6"} <= set(ZOO_NAMES)


# ---------------------------------------------------------------- on-disk cache
def test_cached_trace_writes_once_and_reads_back(tmp_path, monkeypatch):
    import hwsim.trace.cache as cache

    g = cached_trace("gpt2", seq_len=12, phase="prefill", kv_len=0, batch=1, dtype="fp16",
                     cache_dir=tmp_path)
    files = list(tmp_path.glob("*.json.gz"))
    assert len(files) == 1 and files[0].name.startswith("gpt2.prefill.b1.s12.kv0.fp16.")

    def no_tracing(*args, **kwargs):
        raise AssertionError("traced again instead of reading the cache")

    monkeypatch.setattr(cache, "trace", no_tracing)
    again = cached_trace("gpt2", seq_len=12, phase="prefill", kv_len=0, batch=1, dtype="fp16",
                         cache_dir=tmp_path)
    assert to_dict(again) == to_dict(g)
    with pytest.raises(AssertionError):  # another size is another file
        cached_trace("gpt2", seq_len=13, phase="prefill", kv_len=0, batch=1, dtype="fp16",
                     cache_dir=tmp_path)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    from hwsim.trace.cache import cache_path

    monkeypatch.setenv("HWSIM_CACHE_DIR", str(tmp_path))
    path = cache_path("gpt2", seq_len=8, phase="decode", kv_len=4, batch=2, dtype="fp16")
    assert path.parent == tmp_path
    assert path.name.startswith("gpt2.decode.b2.s8.kv4.fp16.")


def test_linear_weights_are_read_transposed():
    """nn.Linear computes x·Wᵀ on its [out, in] weight, a transposed view that PyTorch hands
    to the GEMM as is: every projection records trans_b; a convolution's im2col GEMM and
    row-major operands record nothing."""
    g = trace("_user_models:cnn", seq_len=1)
    layout = {op.module: (op.attrs.get("trans_a"), op.attrs.get("trans_b"))
              for op in g.ops if op.kind == "matmul"}
    assert layout == {"conv": (None, None), "patch": (None, None), "fc": (None, True)}
    g = trace("_user_models:factory", seq_len=16)
    linears = [op for op in g.ops if op.kind == "matmul"]
    assert len(linears) == 9 and all(op.attrs.get("trans_b") is True for op in linears)
    assert not any("trans_a" in op.attrs for op in linears)
    assert g.verify() == []
