"""HoliTom (issue 19 point 2): a video's visual tokens merged before the language model.

docs/pruning.md states what HoliTom costs: O(F h t² d_h) for the tower attention it reads,
O(F m D) for the frames' similarity, O(F² m) for the window search and O(s² D) per
window for the static tokens' clustering. Here the frames and the static tokens are
doubled and each part must grow as stated; the shipped workload keeps the released
count of tokens, runs on every target with its machinery costing time and energy, and
runs fewer FLOPs than the dense video.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import hwsim
from hwsim.errors import InputError
from hwsim.pruning import apply
from hwsim.targets import registry, resolve
from hwsim.workload import build_graph, load_workload, workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "workloads" / "llava-onevision-7b-holitom.yaml"
VIDEO = {"model": "llava-onevision-7b", "text_len": 27}


def _graph(frames: int, **params):
    wl = workload_from_dict({**VIDEO, "frames": frames,
                             "pruning": [{"method": "holitom", **params}]})
    g = apply(build_graph(wl), wl.pruning, wl.source)
    assert g.verify() == []
    return g


def _named(g, name: str):
    """HoliTom's ops called ``name`` or in its group (``name.*``)."""
    return [op for op in g.ops if op.attrs.get("pruning") == "holitom"
            and (op.name == name or op.name.startswith(name + "."))]


def _flops(g, name: str) -> int:
    return sum(g.op_flops(op) for op in _named(g, name))


def _elements(g, name: str) -> int:
    return sum(op.attrs.get("elements", 0) for op in _named(g, name))


def test_shipped_workload_keeps_the_released_count_and_saves_flops():
    wl = load_workload(SHIPPED)
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    assert g.verify() == []
    rec = g.header["pruning"][0]
    # 8 windows of 4 frames, 98 of 196 positions static: 98 x 3 x 8 = 2,352 removed by
    # temporal merging; the spatial ratio 0.1 / (3,920 / 6,272) = 0.16; per window
    # round(98 x 0.16) = 16 static clusters + 4 frames x ceil(98 x 0.16) = 16 dominant
    assert rec["windows"] == [4] * 8 and rec["temporally_merged"] == 2352
    assert rec["spatial_ratio"] == pytest.approx(0.16)
    assert rec["selected"] == f"{8 * (16 + 4 * 16) + 1} of 6273"
    assert rec["tokens_per_layer"] == [14 + 641 + 13] * 28
    ratio = g.flops() / dense.flops()
    assert 0.2 < ratio < 0.3
    machinery = sum(g.op_flops(op) for op in g.ops if op.attrs.get("pruning") == "holitom")
    assert 0 < machinery < 0.01 * dense.flops()


def test_costs_scale_as_documented_with_the_frames_doubled():
    a, b = _graph(8, window=4, static=0.5), _graph(16, window=4, static=0.5)
    # per frame: the tower attention recomputed, the normalization (linear in F)
    for prefix in ("holitom.attn_scores", "holitom.attn_softmax", "holitom.normalize"):
        assert _flops(b, prefix) == 2 * _flops(a, prefix), prefix
    # consecutive pairs: F - 1 of them
    assert _flops(b, "holitom.frame_products") / _flops(a, "holitom.frame_products") \
        == pytest.approx(15 / 7)
    # the window search: F (F - 1) / 2 cumulative products and F² window counts
    assert _flops(b, "holitom.cumprod") / _flops(a, "holitom.cumprod") == \
        pytest.approx(16 * 15 / (8 * 7))
    assert _flops(b, "holitom.window_counts") == 4 * _flops(a, "holitom.window_counts")
    # the same windows twice as often: the static clustering doubles
    assert _flops(b, "holitom.static.cdist") == 2 * _flops(a, "holitom.static.cdist")
    assert b.header["pruning"][0]["windows"] == [4] * 4


def test_the_static_clustering_grows_with_the_square_of_the_static_tokens():
    a, b = _graph(8, window=4, static=0.25), _graph(8, window=4, static=0.5)
    s_a, s_b = a.header["pruning"][0]["static_per_window"], b.header["pruning"][0][
        "static_per_window"]
    assert (s_a, s_b) == (49, 98)
    assert _flops(b, "holitom.static.cdist") == 4 * _flops(a, "holitom.static.cdist")
    assert _elements(b, "holitom.static.parent_masked") == \
        4 * _elements(a, "holitom.static.parent_masked")
    # the merge is ToMe's scatter-add: linear in the members merged (s - clusters)
    rec = b.header["pruning"][0]
    clusters = round(98 * rec["spatial_ratio"])
    assert _elements(b, "holitom.static.merge_scatter_add") == 2 * (98 - clusters) * 3584


def test_no_temporal_window_and_contextual_clustering():
    g = _graph(8, window=1, static=0)
    rec = g.header["pruning"][0]
    assert rec["temporally_merged"] == 0 and rec["spatial_ratio"] == pytest.approx(0.1)
    assert rec["selected"] == f"{8 * math.ceil(196 * 0.1) + 1} of 1569"
    assert _flops(g, "holitom.static") == 0
    assert _flops(g, "holitom.frame_similarity") > 0  # the code always measures the frames
    c = _graph(8, window=1, static=0, contextual=0.5)
    # half of each frame's 20 kept tokens clustered from the 186 not dominant
    assert _flops(c, "holitom.contextual.cdist") == 8 * 2 * 186 * 186 * 3584
    assert c.header["pruning"][0]["selected"] == rec["selected"]


@pytest.mark.parametrize("base, step, match", [
    ({"model": "llava-onevision-7b", "text_len": 27}, {},
     r"merges the frames of a video: this workload has no video"),
    ({**VIDEO, "frames": 4}, {"window": 8}, r"pruning\.0\.window: holitom: 8 frames per window, "
                                             r"but the video has 4 frames"),
])
def test_errors_name_the_field(base, step, match):
    wl = workload_from_dict({**base, "pruning": [{"method": "holitom", **step}]})
    with pytest.raises(InputError, match=match) as e:
        apply(build_graph(wl), wl.pruning, wl.source)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("step, match", [
    ({"static": 1.5}, r"static: must be a fraction in \[0, 1\]"),
    ({"contextual": -0.1}, r"contextual: must be a fraction in \[0, 1\]"),
    ({"window": 0}, r"window: must be a positive integer"),
    ({"keep": 0}, r"keep"),
    ({"tau": 0.8}, r"unknown parameter of holitom"),
])
def test_bad_parameters_are_errors_at_load(step, match):
    with pytest.raises(InputError, match=match):
        workload_from_dict({**VIDEO, "frames": 4, "pruning": [{"method": "holitom", **step}]})


# LLaVA-OneVision-7B's fp16 weights (15 GiB) do not fit the SpAtten target's 8 GiB; in
# int8 (7.5 GiB) the 32 frames' tower attention probabilities HoliTom reads (32 x 16 x
# 729², 0.5 GiB) still do not: both are one-line capacity errors, and 16 frames run
FIT = {"spatten": {"dtype": "int8", "frames": 16}}


@pytest.mark.parametrize("target_name", sorted(registry()))
def test_shipped_workload_runs_on_every_target_and_its_machinery_costs(target_name):
    path = SHIPPED
    fit = FIT.get(target_name)
    if fit:
        wl = load_workload(path)
        for dtype in ("fp16", "int8"):
            w = workload_from_dict({**VIDEO, "frames": 32, "dtype": dtype,
                                    "pruning": wl.pruning})
            with pytest.raises(InputError, match="does not fit") as e:
                hwsim.simulate(w, resolve(target_name), fidelity="analytical")
            assert "\n" not in str(e.value)
        path = workload_from_dict({**VIDEO, **fit, "pruning": wl.pruning})
    r = hwsim.simulate(path, resolve(target_name), fidelity="analytical", baseline=True)
    overhead = r.pruning["overhead"]
    assert set(overhead["by_method"]) == {"holitom"}
    assert overhead["latency_s"] > 0 and overhead["energy_j"] > 0
    ops = r.ops
    for name in ("holitom.attn_scores", "holitom.frame_similarity", "holitom.cumprod",
                 "holitom.static.cdist", "holitom.static.merge_scatter_add",
                 "holitom.dominant_topk"):
        rows = ops[ops["name"] == name]
        assert len(rows) > 0, (target_name, name)
        assert (rows["latency_s"] > 0).all(), (target_name, name)
    assert r.totals["flops"] < r.baseline.totals["flops"]
    assert r.totals["latency_s"] < r.baseline.totals["latency_s"]


def test_an_all_static_video_is_one_window_of_clusters():
    """Every position static in one window of all 4 frames: 3 x 196 removed temporally,
    the spatial ratio 0.1 / (196 / 784) = 0.4 on the 196 averaged tokens (78 clusters),
    no dynamic tokens and so no attention top-k."""
    g = _graph(4, window=4, static=1)
    rec = g.header["pruning"][0]
    assert rec["temporally_merged"] == 588 and rec["spatial_ratio"] == pytest.approx(0.4)
    assert rec["selected"] == "79 of 785"
    assert not _named(g, "holitom.dominant_topk") and _flops(g, "holitom.static.cdist") > 0
