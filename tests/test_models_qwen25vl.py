"""Qwen2.5-VL-7B (issue 12, part 4): its config, its image sizes, its vision tower.

The model is built from the model card's config.json (hwsim/trace/configs/
qwen2.5-vl-7b.yaml); the visual tokens follow the workload's image through the
image processor's smart_resize (hwsim/trace/images.py); the vision tower's
windowed attention is batched per window size. The hand counts below are written
term by term from the config's values; the simulations run in a fresh
interpreter where torch cannot be imported.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from no_torch import run_without_torch, simulate_without_torch
from test_workload import one_problem

import hwsim
from hwsim import zoo
from hwsim.pruning import apply
from hwsim.trace import configs, images
from hwsim.workload import build_graph, workload_from_dict

ROOT = Path(__file__).resolve().parents[1]
MODEL = "qwen2.5-vl-7b"

# The config.json's values (https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json)
D, HEADS, KV_HEADS, FFN, LAYERS, VOCAB = 3584, 28, 4, 18944, 28, 152064
VD, VHEADS, VFFN, VDEPTH, FULL = 1280, 16, 3420, 32, (7, 15, 23, 31)
PATCH_IN = 3 * 2 * 14 * 14  # in_chans x temporal_patch_size x patch_size² = 1176
# the default image: Full HD, 1092x1932 after smart_resize: 39x69 merged tokens
PREFIX, VISUAL = 15, 39 * 69
MIN_SEQ = PREFIX + VISUAL  # 2,706


# ---------------------------------------------------------------- the config
def test_config_cites_its_model_card():
    text = configs.path(MODEL).read_text(encoding="utf-8")
    assert "https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json" in \
        text.splitlines()[1]
    values = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    assert all("# config.json" in line for line in values)
    cfg = configs.load(MODEL)
    assert yaml.safe_load(text) == cfg
    assert (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]) == \
        (D, HEADS, KV_HEADS, FFN, LAYERS, VOCAB)
    v = cfg["vision_config"]
    assert (v["hidden_size"], v["num_heads"], v["intermediate_size"], v["depth"],
            tuple(v["fullatt_block_indexes"]), v["window_size"], v["patch_size"],
            v["spatial_merge_size"], v["temporal_patch_size"], v["out_hidden_size"]) == \
        (VD, VHEADS, VFFN, VDEPTH, FULL, 112, 14, 2, 2, D)
    assert cfg["rope_scaling"] == {"type": "mrope", "mrope_section": [16, 24, 24]}
    head = zoo.headline(MODEL)
    assert (head["kind"], head["layers"], head["vision_layers"], head["kv_heads"],
            head["max_positions"]) == ("vision-language", 28, 32, 4, 128000)


def test_models_listing_shows_both_towers(capsys):
    from hwsim.cli.main import main

    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith(MODEL + " "))
    assert "28 + 32 vision" in row and "28/4" in row and "3,584" in row
    assert "128,000" in row and "shipped" in row


# ---------------------------------------------------------------- image sizes
@pytest.mark.parametrize("given, resized, tokens", [
    # round(1080/28) = 39, round(1920/28) = 69: 1092x1932, 39x69 tokens
    ((1080, 1920), (39 * 28, 69 * 28), 39 * 69),
    # 252 = 9·28, 392 = 14·28: unchanged, 9x14 tokens
    ((252, 392), (252, 392), 9 * 14),
    # 100 -> round(3.57)·28 = 112: 4x4 tokens (area 12,544 >= min_pixels 3,136)
    ((100, 100), (112, 112), 16),
    # below min_pixels: 20x30 rounds to 28x28 = 784 < 3,136, so beta = sqrt(3136/600)
    # = 2.286 and each side rounds up: ceil(20·2.286/28)·28 = 56, ceil(30·2.286/28)·28 = 84
    ((20, 30), (56, 84), 2 * 3),
    # above max_pixels: 3600 -> round(128.57)·28 = 3612, 3612² > 12,845,056, so beta =
    # sqrt(3600²/12845056) = 1.00445 and each side rounds down: floor(128.002)·28 = 3584
    ((3600, 3600), (3584, 3584), 128 * 128),
    # 4000x6000: beta = sqrt(24e6/12845056) = 1.36690; floor(104.51)·28 = 2912,
    # floor(156.77)·28 = 4368: 104x156 tokens of 28 px
    ((4000, 6000), (2912, 4368), 104 * 156),
])
def test_smart_resize_and_visual_tokens(given, resized, tokens):
    assert images.smart_resize(*given) == resized
    layout = images.QWEN25_VL.layout(given)
    assert (layout.image, layout.visual, layout.min_seq_len) == (resized, tokens,
                                                               PREFIX + tokens)
    h, w = resized
    assert h * w <= images.QWEN25VL_MAX_PIXELS and h * w >= images.QWEN25VL_MIN_PIXELS


def test_issue_example_1092x1932():
    assert images.QWEN25_VL.layout((1092, 1932)).visual == 2691
    rows, cols = images.qwen25vl_grid(1092, 1932)
    assert rows * cols == 10764  # 78 x 138 patches
    assert images.qwen25vl_windows(1092, 1932) == {64: 153, 48: 17, 16: 9, 12: 1}
    # 153 full 8x8 windows (9 x 17), 17 bottom ones of 3x4 merged tokens, 9 right ones of
    # 4x1 and the corner's 3x1: 9792 + 816 + 144 + 12 = 10,764 patches
    assert 153 * 64 + 17 * 48 + 9 * 16 + 12 == 10764


def test_aspect_ratio_above_200_is_refused():
    with pytest.raises(ValueError, match="aspect ratio above 200"):
        images.smart_resize(10, 2100)


# ---------------------------------------------------------------- workload fields
def test_text_len_adds_the_images_tokens(write_workload):
    from hwsim.workload import load_workload

    wl = load_workload(write_workload({"model": MODEL, "text_len": 64}))
    assert wl.seq_len == 64 + VISUAL
    wl = load_workload(write_workload({"model": MODEL, "text_len": 64,
                                       "image": {"height": 448, "width": 448}}))
    assert wl.seq_len == 64 + 16 * 16


@pytest.mark.parametrize("extra, field, needles", [
    ({"seq_len": 2000}, "seq_len", ("15 text-prefix + 2,691 visual tokens", ">= 2,706",
                                    "1092x1932")),
    ({"seq_len": 260, "image": {"height": 448, "width": 448}}, "seq_len",
     ("a 448x448 image", "256 visual", ">= 271")),
    ({"seq_len": 3000, "image": {"height": 10, "width": 2100}}, "image",
     ("aspect ratio above 200",)),
    ({"seq_len": 3000, "frames": 8}, "frames", ("still image",)),
    ({"text_len": 10}, "text_len", (">= 15", "got 10")),
])
def test_image_errors(write_workload, extra, field, needles):
    one_problem(write_workload({"model": MODEL, **extra}), field, *needles)


def test_another_image_without_torch_is_one_line_naming_the_shipped_ones(tmp_path):
    """A size no shipped template covers, torch absent: which sizes exist, how to trace."""
    wl = tmp_path / "wl.yaml"
    wl.write_text(yaml.safe_dump({"model": MODEL, "text_len": 40,
                                  "image": {"height": 448, "width": 448}}))
    msg = run_without_torch("""
        import hwsim
        result = ""
        try:
            hwsim.simulate(sys.argv[1], "roofline", fidelity="analytical")
        except hwsim.InputError as e:
            result = str(e)
    """, wl, env={"HWSIM_CACHE_DIR": str(tmp_path / "c")}, timeout=300)
    assert "\n" not in msg and "448x448" in msg, msg
    assert "the default image" in msg and "1092x1932" in msg
    assert "pip install 'hwsim[trace]'" in msg and "python -m hwsim.trace.ship" in msg


# ---------------------------------------------------------------- the vision tower
# A 252x392 image: 18x28 = 504 patches, 9x14 merged tokens. Its windows (4x4 merged
# tokens = 8x8 patches from the top-left): rows of 4, 4, 1 merged tokens by columns
# of 4, 4, 4, 2: six 4x4 (64 patches), two 4x2 (32), three 1x4 (16) and one 1x2 (8).
SMALL = (252, 392)
N = 18 * 28
WINDOWS = {64: 6, 32: 2, 16: 3, 8: 1}
PATCH_EMBED = 2 * N * PATCH_IN * VD  # the Conv3d as a GEMM
BLOCK_MATMUL = (2 * N * VD * 3 * VD  # qkv
                + 2 * N * VD * VD  # proj
                + 2 * N * VD * VFFN  # gate_proj
                + 2 * N * VD * VFFN  # up_proj
                + 2 * N * VFFN * VD)  # down_proj
# attention over a window of s patches: Q·Kᵀ and P·V, 2·s·s·80 each per head
WINDOWED_ATTENTION = sum(count * 4 * VHEADS * s * s * (VD // VHEADS)
                         for s, count in WINDOWS.items())
FULL_ATTENTION = 4 * VHEADS * N * N * (VD // VHEADS)
MERGER = 2 * (N // 4) * 4 * VD * 4 * VD + 2 * (N // 4) * 4 * VD * D  # 5120 -> 5120 -> 3584
VISION = (PATCH_EMBED + VDEPTH * BLOCK_MATMUL + (VDEPTH - len(FULL)) * WINDOWED_ATTENTION
          + len(FULL) * FULL_ATTENTION + MERGER)


@pytest.mark.trace
def test_vision_flops_equal_the_hand_count():
    pytest.importorskip("transformers")
    from hwsim.trace import trace

    assert images.qwen25vl_windows(*SMALL) == WINDOWS
    assert sum(s * c for s, c in WINDOWS.items()) == N
    assert VISION == 656_890_429_440
    g = trace(MODEL, seq_len=PREFIX + 126 + 10, image=SMALL)
    assert g.header["segments"] == {"text": [0, 15], "visual": [15, 141],
                                    "question": [141, 151]}
    assert g.header["image"] == {"height": 252, "width": 392, "frames": 0}
    vision = [op for op in g.ops if (op.module or "").startswith("model.visual")]
    flops = sum(g.op_flops(op) for op in vision if op.kind in ("matmul", "attention"))
    assert flops == VISION
    by_block: dict[int, list] = {}
    for op in vision:
        if op.kind == "attention":
            block = int(op.module.split(".")[3])
            by_block.setdefault(block, []).append(
                (op.attrs["batch"], op.attrs["q_len"], op.attrs["kv_len"], op.attrs["heads"],
                 op.attrs["head_dim"], op.attrs.get("causal"), op.attrs.get("window", 0)))
    assert sorted(by_block) == list(range(VDEPTH))
    for block, ops in by_block.items():
        if block in FULL:  # one op over all the image's patches
            assert ops == [(1, N, N, 16, 80, False, 0)]
        else:  # one op per window size, its batch the number of windows of that size
            assert ops == [(c, s, s, 16, 80, False, 0) for s, c in WINDOWS.items()]
    assert sum(g.op_flops(op) for op in vision if op.kind == "attention") == \
        28 * WINDOWED_ATTENTION + 4 * FULL_ATTENTION


def test_default_image_graph_from_the_shipped_template():
    """Without tracing: the language model reads 2,706 + question tokens; the tower's
    attention is 153 + 17 + 9 + 1 windows in 28 blocks and 10,764 patches in 4."""
    g = build_graph(workload_from_dict({"model": MODEL, "seq_len": MIN_SEQ + 49}))
    assert g.header["segments"] == {"text": [0, 15], "visual": [15, 2706],
                                    "question": [2706, 2755]}
    attn = [op for op in g.ops if op.kind == "attention"]
    vis = [(op.attrs["batch"], op.attrs["q_len"]) for op in attn
           if op.module.startswith("model.visual")]
    assert vis.count((153, 64)) == 28 and vis.count((1, 12)) == 28
    assert vis.count((1, 10764)) == 4
    lm = [op for op in attn if op.module.startswith("model.language_model")]
    assert len(lm) == 28 and all((op.attrs["q_len"], op.attrs["heads"], op.attrs["kv_heads"],
                                  op.attrs["causal"]) == (2755, 28, 4, True) for op in lm)


# ---------------------------------------------------------------- templates vs traces
@pytest.mark.trace
@pytest.mark.parametrize("phase,batch,seq_len,kv_len", [
    ("prefill", 2, MIN_SEQ + 40, 0), ("decode", 1, 1, 3000)])
def test_shipped_template_equals_a_fresh_trace(phase, batch, seq_len, kv_len):
    pytest.importorskip("transformers")
    from hwsim.trace import trace
    from hwsim.trace.template import compare

    size = {"batch": batch, "seq_len": seq_len, "kv_len": kv_len}
    tmpl = zoo.template(MODEL, phase)
    assert size not in tmpl.header["template"]["points"]
    assert compare(tmpl.instantiate(**size), trace(MODEL, phase=phase, **size)) == []


@pytest.mark.trace
def test_another_image_is_traced_once_into_the_cache(tmp_path, monkeypatch):
    """A non-default image with torch: its own template, keyed by the resized size."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("HWSIM_CACHE_DIR", str(tmp_path))
    zoo.template.cache_clear()
    try:
        wl = workload_from_dict({"model": MODEL, "text_len": 20,
                                 "image": {"height": 250, "width": 390}})  # -> 252x392
        assert wl.seq_len == 20 + 126
        g = build_graph(wl)
        files = list(tmp_path.glob("qwen2.5-vl-7b.prefill.252x392.template.*.json.gz"))
        assert len(files) == 1
        assert g.header["segments"]["visual"] == [15, 141]
        vision = [op for op in g.ops if (op.module or "").startswith("model.visual")]
        assert sum(g.op_flops(op) for op in vision if op.kind in ("matmul", "attention")) \
            == VISION
    finally:
        zoo.template.cache_clear()


# ---------------------------------------------------------------- every target, no torch
TARGETS = ("roofline", "ascend", "volta", "armv8", "spatten")
SIZES = {"prefill": {"seq_len": MIN_SEQ + 49}, "decode": {"seq_len": 1, "kv_len": 4096}}


def test_runs_on_every_target_without_torch():
    cases = []
    for phase, size in SIZES.items():
        for target in TARGETS:
            case = {"model": MODEL, "phase": phase, "size": size, "target": target}
            if target == "spatten":  # one 8 GiB chip: 16.6 GB of weights need a bigger HBM
                cases.append({**case, "expect_refusal": True})
                case = {**case, "sets": ["target.dram_bytes=32 GiB"]}
            cases.append(case)
    flops: dict[str, set] = {}
    for run in simulate_without_torch(cases):
        where = f"{run['phase']} on {run['target']}"
        if run.get("expect_refusal"):
            assert "does not fit" in run.get("error", ""), where
            continue
        assert "error" not in run, f"{where}: {run.get('error')}"
        assert run["latency_s"] > 0 and run["flops"] > 0 and run["kv_read"] > 0, where
        flops.setdefault(run["phase"], set()).add(run["flops"])
    assert all(len(v) == 1 for v in flops.values()) and len(flops) == 2


# ---------------------------------------------------------------- token pruning
TEXT = 64  # 15 prefix + 49 question
S = TEXT + VISUAL  # 2,755


def lm_rows(g) -> list[int]:
    """Rows (tokens) of each language-model layer's q_proj."""
    return [op.attrs["m"] for op in g.ops
            if (op.module or "").startswith("model.language_model.layers")
            and op.module.endswith("q_proj")]


def lm_flops(g) -> int:
    return sum(g.op_flops(op) for op in g.ops
               if (op.module or "").startswith("model.language_model")
               and op.kind in ("matmul", "attention"))


def layer_flops(n: int) -> int:
    """One LM layer at n tokens: q, k, v (biased), o, the SwiGLU FFN, attention's square."""
    kv = KV_HEADS * (D // HEADS)  # 512
    return (2 * n * D * D + 2 * 2 * n * D * kv + 2 * n * D * D + 3 * 2 * n * D * FFN
            + 4 * n * n * D)


@pytest.mark.parametrize("step, kept_visual, from_layer", [
    # FastV K=2, R=50 %: round_half_up(2691 / 2) = 1346 visual tokens from layer 2
    ({"method": "fastv", "at_layer": 2, "keep": 0.5}, 1346, 2),
    # HAWK keeps 19.8 % before the LM: round_half_up(532.8) = 533
    ({"method": "hawk", "keep": 0.198}, 533, 0),
    # DivPrune at layer 0 keeps 9.8 %: round_half_up(263.7) = 264
    ({"method": "divprune", "at_layer": 0, "keep": 0.098}, 264, 0),
    # TopV at layer 2 keeps 22.2 % (LLaVA's 128 of 576): round_half_up(597.4) = 597
    ({"method": "topv", "at_layer": 2, "keep": 0.222, "iterations": 10}, 597, 2),
])
def test_token_pruning_prunes_only_visual_tokens(step, kept_visual, from_layer):
    wl = workload_from_dict({"model": MODEL, "text_len": TEXT,
                             "pruning": [{**step, "segment": "visual"}]})
    dense = build_graph(wl)
    pruned = apply(dense, wl.pruning, wl.source)
    assert pruned.verify() == []
    kept = TEXT + kept_visual  # every text token stays
    assert lm_rows(dense) == [S] * LAYERS
    assert lm_rows(pruned) == [S] * from_layer + [kept] * (LAYERS - from_layer)
    saved = (LAYERS - from_layer) * (layer_flops(S) - layer_flops(kept))
    # the LM's matmul + attention FLOPs drop by the hand count (the method's own
    # scoring ops are counted apart, and the LM head reads the last position either way)
    machinery = sum(pruned.op_flops(op) for op in pruned.ops
                    if op.name.startswith(step["method"] + ".")
                    and (op.module or "").startswith("model.language_model")
                    and op.kind in ("matmul", "attention"))
    assert lm_flops(dense) - (lm_flops(pruned) - machinery) == saved
    # the vision tower is untouched
    vis = [op for op in dense.ops if (op.module or "").startswith("model.visual")]
    assert sum(dense.op_flops(op) for op in vis) == sum(
        pruned.op_flops(op) for op in pruned.ops if (op.module or "").startswith("model.visual"))


def test_fastv_workload_reads_fewer_kv_bytes():
    dense = hwsim.simulate(ROOT / "workloads/qwen2.5-vl-7b.yaml", "roofline",
                           fidelity="analytical")
    fastv = hwsim.simulate(ROOT / "workloads/qwen2.5-vl-7b-fastv.yaml", "roofline",
                           fidelity="analytical")
    assert fastv.totals["flops"] < dense.totals["flops"]
    kv = [int(x) for x, k in zip(fastv.ops["dram_write_bytes"], fastv.ops["kind"])
          if k == "kv_write"]
    kv_dense = [int(x) for x, k in zip(dense.ops["dram_write_bytes"], dense.ops["kind"])
                if k == "kv_write"]
    # K and V of 28 layers: 2 layers at 2,755 tokens and 26 at 64 + 1,346 = 1,410
    per_token = 2 * KV_HEADS * (D // HEADS) * 2  # K and V, fp16
    assert sum(kv_dense) == 28 * S * per_token
    assert sum(kv) == (2 * S + 26 * 1410) * per_token
    assert math.isclose(sum(kv) / sum(kv_dense), (2 * S + 26 * 1410) / (28 * S))
