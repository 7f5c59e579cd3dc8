"""A tiny mixture-of-experts model built by hand, and the ``moe_experts`` kind on it.

:func:`tiny_moe` is the graph the other tests/test_moe_*.py use: per layer an
attention block and a Mixtral-style MoE block (router: gate matmul, softmax,
top-k, renormalization; then one ``moe_experts`` op), as hwsim's tracer records
Mixtral (hwsim/trace/moe.py). :func:`moe_workload` saves it and returns a
workload dict that runs it through ``trace:``.
"""

from __future__ import annotations

import pytest

from hwsim.errors import UnsupportedOpError
from hwsim.ir import Graph, save
from hwsim.ir.kinds import FN_FLOPS, check, flops, read_bytes, write_bytes
from hwsim.simulate import run_graph
from hwsim.targets import registry, resolve

# the sizes every MoE test uses unless it says otherwise
T, H, F, E, K = 16, 64, 128, 8, 2
HEADS, HD = 4, 16
BYTES = 2  # fp16


def tiny_moe(tokens: int = T, hidden: int = H, ffn: int = F, experts: int = E, top_k: int = K,
             layers: int = 2, phase: str = "prefill", kv_len: int = 0, gated: bool = True,
             act: str = "silu") -> Graph:
    """``layers`` blocks of attention + MoE over ``tokens`` tokens (fp16)."""
    dt = "fp16"
    keys = kv_len + tokens if phase == "decode" else tokens
    g = Graph({"name": "tiny-moe", "model": "tiny-moe", "phase": phase, "batch": 1,
               "seq_len": tokens, "kv_len": kv_len, "dtype": dt,
               "config": {"hidden": hidden, "ffn": ffn, "experts": experts}})
    x = g.add_tensor([1, tokens, hidden], dt, "input")
    for L in range(layers):
        m = f"model.layers.{L}"

        def op(kind, ins, outs, attrs, mod, _L=L):
            g.add_op(kind, ins, outs, attrs, layer=_L, module=mod)

        wq = g.add_tensor([hidden, HEADS * HD], dt, "param")
        q = g.add_tensor([tokens, HEADS * HD], dt)
        op("matmul", [x, wq], [q], dict(batch=1, m=tokens, n=HEADS * HD, k=hidden),
           f"{m}.self_attn.q_proj")
        kc = g.add_tensor([1, HEADS, keys, HD], dt, "kv_cache")
        vc = g.add_tensor([1, HEADS, keys, HD], dt, "kv_cache")
        att = g.add_tensor([1, HEADS, tokens, HD], dt)
        op("attention", [q, kc, vc], [att], dict(batch=1, heads=HEADS, kv_heads=HEADS,
                                                 head_dim=HD, q_len=tokens, kv_len=keys,
                                                 causal=True), f"{m}.self_attn")
        wo = g.add_tensor([HEADS * HD, hidden], dt, "param")
        o = g.add_tensor([tokens, hidden], dt)
        op("matmul", [att, wo], [o], dict(batch=1, m=tokens, n=hidden, k=HEADS * HD),
           f"{m}.self_attn.o_proj")
        h1 = g.add_tensor([1, tokens, hidden], dt)
        op("elementwise", [x, o], [h1], dict(fn="add", elements=tokens * hidden), m)
        wg = g.add_tensor([experts, hidden], dt, "param")
        logits = g.add_tensor([tokens, experts], dt)
        op("matmul", [h1, wg], [logits], dict(batch=1, m=tokens, n=experts, k=hidden),
           f"{m}.mlp.gate")
        probs = g.add_tensor([tokens, experts], dt)
        op("softmax", [logits], [probs], dict(rows=tokens, cols=experts), f"{m}.mlp.gate")
        vals = g.add_tensor([tokens, top_k], dt)
        idx = g.add_tensor([tokens, top_k], "int64")
        op("topk", [probs], [vals, idx], dict(rows=tokens, n=experts, k=top_k), f"{m}.mlp.gate")
        norm = g.add_tensor([tokens, 1], dt)
        op("reduce", [vals], [norm], dict(fn="sum", elements=tokens * top_k,
                                          out_elements=tokens), f"{m}.mlp.gate")
        w = g.add_tensor([tokens, top_k], dt)
        op("elementwise", [vals, norm], [w], dict(fn="div", elements=tokens * top_k),
           f"{m}.mlp.gate")
        w_in = g.add_tensor([experts, (2 if gated else 1) * ffn, hidden], dt, "param")
        w_out = g.add_tensor([experts, hidden, ffn], dt, "param")
        y = g.add_tensor([tokens, hidden], dt)
        op("moe_experts", [h1, idx, w, w_in, w_out], [y],
           dict(tokens=tokens, hidden=hidden, ffn=ffn, experts=experts, top_k=top_k, act=act,
                gated=gated), f"{m}.mlp.experts")
        x2 = g.add_tensor([1, tokens, hidden], dt)
        op("elementwise", [h1, y], [x2], dict(fn="add", elements=tokens * hidden), m)
        x = x2
    return g


def moe_workload(tmp_path, name: str = "tiny-moe", **kw) -> dict:
    """A workload dict running :func:`tiny_moe` (``kw``: its sizes) from a saved trace."""
    g = tiny_moe(**kw)
    path = tmp_path / f"{name}.json.gz"
    save(g, path)
    return {"name": name, "trace": str(path), "phase": g.header["phase"],
            "seq_len": g.header["seq_len"], "kv_len": g.header["kv_len"]}


def moe_op(g: Graph, layer: int = 0):
    return next(op for op in g.ops if op.kind == "moe_experts" and op.layer == layer)


# ---------------------------------------------------------------------------- the kind
def test_tiny_model_verifies():
    assert tiny_moe().verify() == []
    assert tiny_moe(phase="decode", tokens=1, kv_len=31).verify() == []
    assert tiny_moe(gated=False, act="gelu").verify() == []


def test_flops_are_every_routed_token_through_top_k_expert_ffns():
    g = tiny_moe()
    # per routed row: up (gate and up) 2·H·2F, down 2·F·H, SwiGLU 3 per ffn element
    per_row = 2 * H * 2 * F + 2 * F * H + FN_FLOPS["swiglu"] * F
    assert per_row == 32768 + 16384 + 384
    assert flops(moe_op(g)) == T * K * per_row == 32 * 49536
    # plain (ungated) GELU: one input projection, GELU's 5 per element
    g = tiny_moe(gated=False, act="gelu")
    assert flops(moe_op(g)) == T * K * (2 * H * F + 2 * F * H + 5 * F)
    # gated GELU (GeGLU): the function and the gate's product, 5 + 1
    g = tiny_moe(act="gelu")
    assert flops(moe_op(g)) == T * K * (2 * H * 2 * F + 2 * F * H + 6 * F)


def test_compulsory_bytes_are_the_activations_and_the_experts_balanced_routing_reaches():
    g = tiny_moe()
    op = moe_op(g)
    expert = (2 * F * H + H * F) * BYTES  # one expert's w_in and w_out
    x, idx, w, out = T * H * BYTES, T * K * 8, T * K * BYTES, T * H * BYTES
    # 16 tokens x top-2 = 32 rows reach all 8 experts
    assert read_bytes(op, g) == x + idx + w + 8 * expert
    assert write_bytes(op, g) == out
    # one decode token reaches exactly two experts
    g = tiny_moe(phase="decode", tokens=1, kv_len=31)
    op = moe_op(g)
    assert read_bytes(op, g) == H * BYTES + K * 8 + K * BYTES + 2 * expert
    # 3 tokens x top-2 = 6 rows: at most 6 of the 8 experts
    g = tiny_moe(tokens=3)
    assert read_bytes(moe_op(g), g) == 3 * H * BYTES + 6 * 8 + 6 * BYTES + 6 * expert


def _with_attrs(g: Graph, **attrs):
    op = moe_op(g)
    bad = type(op)(op.id, op.kind, op.inputs, op.outputs, {**op.attrs, **attrs}, op.layer,
                   op.module, op.name)
    return check(bad, g)


def test_check_names_each_bad_attribute_in_one_line():
    g = tiny_moe()
    assert _with_attrs(g) == []
    assert _with_attrs(g, act="swish") == [
        "act='swish' is not one of silu, gelu, gelu_tanh, relu"]
    assert _with_attrs(g, active_k=3) == ["active_k=3 exceeds top_k=2 or experts=8"]
    assert _with_attrs(g, kept=[0, 0]) == [
        "kept=[0, 0] must be a list of distinct non-negative expert ids"]
    assert _with_attrs(g, kept=[0, 1]) == ["kept lists 2 experts, expected experts=8"]
    assert _with_attrs(g, gated="yes") == ["gated='yes' must be true or false"]
    assert _with_attrs(g, ffn=100) == ["w_in has 131072 elements, expected 102400",
                                       "w_out has 65536 elements, expected 51200"]
    assert _with_attrs(g, tokens=8) == ["input x has 1024 elements, expected 512",
                                        "index has 32 elements, expected 16",
                                        "routing weights has 32 elements, expected 16",
                                        "output has 1024 elements, expected 512"]
    assert _with_attrs(g, colour=1) == ["unexpected attribute 'colour'"]
    for msg in _with_attrs(g, act="swish") + _with_attrs(g, ffn=100):
        assert "\n" not in msg


def test_expert_weights_must_be_parameters():
    g = tiny_moe(layers=1)
    op = moe_op(g)
    act = g.add_tensor([E, 2 * F, H], "fp16")  # an activation in w_in's place
    bad = type(op)(op.id, op.kind, (*op.inputs[:3], act, op.inputs[4]), op.outputs,
                   op.attrs, op.layer, op.module, op.name)
    assert check(bad, g) == ["w_in must be a parameter (the experts' weights)"]


@pytest.mark.parametrize("target", sorted(registry()))
def test_no_target_costs_an_unexpanded_moe_op(target):
    """The simulator refuses it by name: no silent zero and no target-specific guess."""
    with pytest.raises(UnsupportedOpError, match="moe_experts"):
        run_graph(tiny_moe(layers=1), resolve(target))


# ---------------------------------------------------------------------------- ops: kernel
def test_a_kernel_study_moe_layer_is_expanded_by_the_routing():
    """``ops: [{kind: moe_experts, ...}]``: one Mixtral MoE layer (hidden 4096, ffn
    14336, 8 experts, top-2) on 512 tokens; the GEMMs' FLOPs do not depend on routing."""
    import hwsim
    from hwsim.workload import workload_from_dict

    op = {"kind": "moe_experts", "tokens": 512, "hidden": 4096, "ffn": 14336, "experts": 8}
    flops_ = {}
    for name, routing in (("balanced", {}), ("skew", {"mode": "skew", "alpha": 1.2})):
        wl = workload_from_dict({"ops": [op], "routing": routing}, "k.yaml")
        r = hwsim.simulate(wl, "roofline", sets=["target.dram_bytes=1e12"])
        gemm = r.ops[r.ops["kind"] == "matmul"]
        assert len(gemm) == 2 * 8  # every expert reached, up and down
        flops_[name] = int(gemm["flops"].sum())
        rows = 512 * 2
        # the GEMMs, SwiGLU's 3 per ffn element, the combine's mul and sum per hidden element
        assert int(r.ops["flops"].sum()) == flops_[name] + rows * 3 * 14336 + rows * 2 * 4096
    assert flops_["balanced"] == flops_["skew"] == 512 * 2 * (2 * 4096 * 2 * 14336
                                                            + 2 * 14336 * 4096)


def test_kernel_study_moe_parameters_are_checked_in_one_line():
    from hwsim.errors import InputError
    from hwsim.workload import workload_from_dict

    bad = {"kind": "moe_experts", "tokens": 4, "hidden": 4, "ffn": 4, "experts": 2,
           "top_k": 3, "act": "swish", "gated": 1}
    with pytest.raises(InputError) as e:
        workload_from_dict({"ops": [bad]}, "k.yaml")
    fields = {p.field: p.message for p in e.value.problems}
    assert fields == {"ops.0.act": "expected one of silu, gelu, gelu_tanh, relu, got 'swish'",
                      "ops.0.gated": "expected true or false, got 1",
                      "ops.0.top_k": "top_k=3 exceeds experts=2"}
