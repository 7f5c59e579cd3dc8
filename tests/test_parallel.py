"""Tensor parallelism: Megatron's split found from the graph's structure."""

import pytest

from hwsim.errors import InputError
from hwsim.ir import Graph
from hwsim.parallel import tensor_parallel
from hwsim.simulate import run_graph
from hwsim.targets import resolve

S, D, F, H = 16, 64, 256, 4


def block(kv_heads: int = H) -> Graph:
    """One pre-norm transformer block: attention then a 2-matmul MLP, with residuals."""
    g = Graph({"name": "block"})
    x = g.add_tensor([1, S, D], "fp16", "input")
    wn = g.add_tensor([D], "fp16", "param")
    xn = g.add_tensor([1, S, D], "fp16")
    g.add_op("rmsnorm", [x, wn], [xn], dict(rows=S, cols=D), layer=0)
    kv_dim = D // H * kv_heads
    q, k, v = (g.add_tensor([1, S, n], "fp16") for n in (D, kv_dim, kv_dim))
    for n, t in ((D, q), (kv_dim, k), (kv_dim, v)):
        w = g.add_tensor([D, n], "fp16", "param")
        g.add_op("matmul", [xn, w], [t], dict(batch=1, m=S, n=n, k=D), layer=0)
    a = g.add_tensor([1, S, D], "fp16")
    g.add_op("attention", [q, k, v], [a], dict(batch=1, heads=H, kv_heads=kv_heads,
                                               head_dim=D // H, q_len=S, kv_len=S, causal=True),
             layer=0)
    wo = g.add_tensor([D, D], "fp16", "param")
    o = g.add_tensor([1, S, D], "fp16")
    g.add_op("matmul", [a, wo], [o], dict(batch=1, m=S, n=D, k=D), layer=0, name="o_proj")
    r = g.add_tensor([1, S, D], "fp16")
    g.add_op("elementwise", [o, x], [r], dict(fn="add", elements=S * D), layer=0)
    w1, w2 = g.add_tensor([D, F], "fp16", "param"), g.add_tensor([F, D], "fp16", "param")
    h1, h2, y = g.add_tensor([1, S, F], "fp16"), g.add_tensor([1, S, F], "fp16"), \
        g.add_tensor([1, S, D], "fp16")
    g.add_op("matmul", [r, w1], [h1], dict(batch=1, m=S, n=F, k=D), layer=0)
    g.add_op("elementwise", [h1], [h2], dict(fn="gelu", elements=S * F), layer=0)
    g.add_op("matmul", [h2, w2], [y], dict(batch=1, m=S, n=D, k=F), layer=0, name="down")
    out = g.add_tensor([1, S, D], "fp16")
    g.add_op("elementwise", [y, r], [out], dict(fn="add", elements=S * D), layer=0)
    assert g.verify() == []
    return g


def test_megatron_split_of_a_block():
    g = block()
    t = tensor_parallel(g, 2)
    assert t.verify() == []
    kinds = [op.kind for op in t.ops]
    # one all-reduce after each row-parallel matmul (attention output and MLP down)
    assert kinds.count("allreduce") == 2
    names = [op.name for op in t.ops if op.kind == "allreduce"]
    assert names == ["o_proj.allreduce", "down.allreduce"]
    mm = [op for op in t.ops if op.kind == "matmul"]
    assert [(op.attrs["n"], op.attrs["k"]) for op in mm] == [
        (D // 2, D), (D // 2, D), (D // 2, D), (D, D // 2), (F // 2, D), (D, F // 2)]
    att = next(op for op in t.ops if op.kind == "attention")
    assert att.attrs["heads"] == H // 2
    # the sharded work halves; norms and residual adds are replicated
    replicated = sum(t.op_flops(op) for op in t.ops
                     if op.kind in ("rmsnorm",) or op.attrs.get("fn") == "add")
    assert t.flops() - replicated == pytest.approx((g.flops() - replicated) / 2)
    # each all-reduce sums the full activation
    for op in t.ops:
        if op.kind == "allreduce":
            assert op.attrs == {"elements": S * D, "devices": 2}
    # the residual add after the attention reads the all-reduced tensor
    add = next(op for op in t.ops if op.kind == "elementwise" and op.attrs["fn"] == "add")
    ar = next(op for op in t.ops if op.kind == "allreduce")
    assert add.inputs[0] == ar.outputs[0]


def test_grouped_query_heads_fewer_than_devices_are_replicated():
    t = tensor_parallel(block(kv_heads=1), 4)
    att = next(op for op in t.ops if op.kind == "attention")
    assert (att.attrs["heads"], att.attrs["kv_heads"]) == (1, 1)


def test_indivisible_split_is_an_error():
    with pytest.raises(InputError, match="cannot split over 3 devices"):
        tensor_parallel(block(), 3)


def test_roofline_costs_the_ring_allreduce():
    spec = resolve("roofline-v100").spec
    t = tensor_parallel(block(), 2)
    rep = run_graph(t, resolve("roofline-v100"))
    row = rep.ops[rep.ops["kind"] == "allreduce"].iloc[0]
    nbytes = S * D * 2
    expected = (2 * 1 * nbytes / 2) / spec.link_bw_bytes_per_s + 2 * spec.link_latency_s \
        + spec.kernel_launch_s
    assert row.latency_s == pytest.approx(expected)
    assert row.bound == "interconnect"
    # totals count both devices' work
    assert rep.totals["flops"] == 2 * t.flops()


def test_roofline_without_links_refuses_an_allreduce():
    with pytest.raises(InputError, match="no links"):
        run_graph(tensor_parallel(block(), 2), resolve("roofline-910b"))


def test_mesh_allreduce_spreads_the_same_bytes_over_every_peer_link():
    from hwsim.collectives import allreduce

    nbytes, n, bw, lat = 64e6, 8, 56e9, 2e-6
    ring = allreduce(nbytes, n, bw, lat, "ring")
    mesh = allreduce(nbytes, n, bw, lat, "mesh")
    assert ring.sent_bytes == mesh.sent_bytes == pytest.approx(2 * 7 / 8 * nbytes)
    assert ring.time_s == pytest.approx(ring.sent_bytes / bw + 14 * lat)
    assert mesh.time_s == pytest.approx(mesh.sent_bytes / (7 * bw) + 2 * lat)
    with pytest.raises(InputError, match="ring, mesh"):
        allreduce(nbytes, n, bw, lat, "torus")
