"""LLaVA-OneVision-7B: its config, its visual-token counts, its graph and its workloads.

Token counts are checked three ways: hand-worked numbers (always), transformers'
own count (``LlavaOnevisionProcessor._get_number_of_features``) and the model's
own packing (``pack_image_features`` on small real tensors) when transformers is
importable. The graph is checked without torch from the shipped templates.
"""

from __future__ import annotations

import random
import types
from pathlib import Path

import pytest
from no_torch import simulate_without_torch, simulated

from hwsim.trace import anyres, configs, hfconfig, images

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("roofline", "ascend", "volta", "armv8", "spatten")


# ---------------------------------------------------------------- the config
def test_config_values_from_the_model_card():
    cfg = configs.load("llava-onevision-7b")
    v, t = cfg["vision_config"], cfg["text_config"]
    # SigLIP so400m/14 at 384 px, cut to 26 of its 27 layers; the last is read (-1)
    assert (v["hidden_size"], v["intermediate_size"], v["num_attention_heads"]) == (1152, 4304, 16)
    assert (v["num_hidden_layers"], v["patch_size"], v["image_size"]) == (26, 14, 384)
    assert v["vision_use_head"] is False
    assert cfg["vision_feature_layer"] == -1 and cfg["vision_feature_select_strategy"] == "full"
    assert cfg["vision_aspect_ratio"] == "anyres_max_9" and cfg["projector_hidden_act"] == "gelu"
    assert [tuple(p) for p in cfg["image_grid_pinpoints"]] == list(anyres.PINPOINTS)
    assert len(cfg["image_grid_pinpoints"]) == 36  # 1x1 to 6x6 crops of 384 px
    # Qwen2-7B-Instruct: 28 layers, 28 query heads over 4 KV heads, 32K positions
    assert (t["num_hidden_layers"], t["hidden_size"], t["intermediate_size"]) == (28, 3584, 18944)
    assert (t["num_attention_heads"], t["num_key_value_heads"]) == (28, 4)
    assert t["vocab_size"] == 152128 == -(-(152064 + 2) // 64) * 64  # + <image>, <video>, padded
    head = hfconfig.headline(cfg)
    assert head["kind"] == "vision-language" and head["max_positions"] == 32768
    assert (head["vision_layers"], head["vision_hidden"]) == (26, 1152)
    # every value carries its source
    text = configs.path("llava-onevision-7b").read_text().splitlines()
    assert "huggingface.co/llava-hf/llava-onevision-qwen2-7b-ov-hf" in "\n".join(text[:3])
    values = [ln for ln in text if ln and not ln.startswith("#") and not ln.startswith("  - [")]
    cited = [ln for ln in values if "# config.json" in ln or "# derived:" in ln]
    assert cited == values, sorted(set(values) - set(cited))
    assert [ln.split(":")[0].strip() for ln in values if "# derived:" in ln] == ["vocab_size"]


# ---------------------------------------------------------------- token counts
# (height, width) -> (grid px, tiles, unpadded map, reduced map, visual tokens), by hand:
HAND = {
    # 899x1024 fits 1152x1152 whole (3x3 crops, 10 tiles); the 81x81 map loses the
    # rows of the vertical padding: round(899·81/1024) = 71 rows kept (5 cut at each
    # end). ratio sqrt(71·81 / (9·27²)) = 0.94: no reduction. 729 + 71·81 + 71.
    (899, 1024): ((1152, 1152), 10, (71, 81), (71, 81), 729 + 71 * 81 + 71),
    # one 384 crop and the base view: 729 + 27·27 + 27
    (384, 384): ((384, 384), 2, (27, 27), (27, 27), 729 + 729 + 27),
    # 1092x1932 fits 1152x2304 (3x6 crops, 19 tiles); columns padded: round(1932·81/1092)
    # = 143, (162 - 143) // 2 = 9 cut at each end: 81x144; ratio sqrt(81·144/6561) =
    # 4/3 > 1.1: bilinear to 81 // (4/3) = 60 rows, 144 // (4/3) = 108 columns
    (1092, 1932): ((1152, 2304), 19, (81, 144), (60, 108), 729 + 60 * 108 + 60),
    # 2304x2304: 6x6 crops, 37 tiles; the 162x162 map has ratio 2 > 1.1: 81x81
    (2304, 2304): ((2304, 2304), 37, (162, 162), (81, 81), 729 + 81 * 81 + 81),
    # 480x640: 768x768 is the smallest grid holding all 307,200 px (2x2 crops, 5
    # tiles); rows padded: int(round(480·54/640)) = int(40.5) = 40, 7 cut at each end
    (480, 640): ((768, 768), 5, (40, 54), (40, 54), 729 + 40 * 54 + 40),
}


@pytest.mark.parametrize("size", list(HAND))
def test_image_tokens_by_hand(size):
    grid, tiles, unpadded, reduced, tokens = HAND[size]
    plan = anyres.plan_image(*size)
    assert plan.grid == grid and plan.tiles == tiles
    assert plan.unpadded == unpadded and plan.reduced == reduced
    assert plan.tokens == tokens
    layout = images.RULES["llava_onevision"].layout(size)
    assert layout.visual == tokens and layout.text_prefix == 14


def test_video_tokens_by_hand():
    # 27x27 per frame pooled 2x2 to ceil(27/2) = 14 a side: 196, one newline per video
    assert anyres.video_tokens_per_frame() == 14 * 14 == 196
    assert anyres.video_tokens(8) == 8 * 196 + 1 == 1569
    assert anyres.video_tokens(32) == 32 * 196 + 1 == 6273
    rule = images.RULES["llava_onevision"]
    assert rule.layout(None, 32).visual == 6273 and rule.canonical((1080, 1920), 32) == (384, 384)
    assert images.tag(rule, None, 32) == "384x384-f32"


def test_true_maximum_is_not_llava_next_2880():
    # LLaVA-NeXT: CLIP-L/14-336 (576 tokens a tile), at most 4 crops + base: 5 x 576
    assert 5 * (336 // 14) ** 2 == 2880
    n, size = anyres.max_image_tokens()
    # 1380x1152 -> 1536x1152 grid (4x3 crops), 108x81 map unpadded to 98x81, ratio
    # sqrt(98·81 / 6561) = 1.0999 <= 1.1: kept whole: 729 + 98·81 + 98
    assert n == 729 + 98 * 81 + 98 == 8765
    assert anyres.plan_image(*size).tokens == n
    rng = random.Random(12)
    for _ in range(2000):  # no image beats it
        assert anyres.plan_image(rng.randint(1, 6000), rng.randint(1, 6000)).tokens <= n


def _processor_counter():
    processing = pytest.importorskip(
        "transformers.models.llava_onevision.processing_llava_onevision")
    proc = processing.LlavaOnevisionProcessor
    fake = types.SimpleNamespace(
        image_processor=types.SimpleNamespace(image_grid_pinpoints=[list(p) for p in
                                                                    anyres.PINPOINTS]),
        num_image_tokens=729, vision_aspect_ratio="anyres_max_9")
    fake._get_unpadded_features = types.MethodType(proc._get_unpadded_features, fake)
    return lambda h, w: proc._get_number_of_features(fake, h, w, 384, 384)


SIZES = [(899, 1024), (384, 384), (1092, 1932), (1380, 1152), (2304, 2304), (480, 640),
         (100, 3000), (3000, 100), (10, 10), (5000, 5000), (1080, 1920), (1157, 958)]


def test_counts_match_the_transformers_processor():
    count = _processor_counter()
    rng = random.Random(3)
    sizes = SIZES + [(rng.randint(16, 4000), rng.randint(16, 4000)) for _ in range(200)]
    for h, w in sizes:
        assert anyres.plan_image(h, w).tokens == count(h, w), (h, w)


def test_counts_match_the_models_own_packing():
    torch = pytest.importorskip("torch")
    modeling = pytest.importorskip("transformers.models.llava_onevision.modeling_llava_onevision")
    from transformers import LlavaOnevisionConfig

    cfg = LlavaOnevisionConfig()
    owner = types.SimpleNamespace(config=cfg)
    dim = 4
    for h, w in SIZES:
        plan = anyres.plan_image(h, w)
        assert modeling.image_size_to_num_patches([h, w], cfg.image_grid_pinpoints, 384) \
            == plan.tiles
        out, _ = modeling.LlavaOnevisionModel.pack_image_features(
            owner, [torch.zeros(plan.tiles, 729, dim)], torch.tensor([[h, w]]),
            image_newline=torch.zeros(dim))
        assert out[0].shape == (plan.tokens, dim), (h, w)
    pooled = modeling.LlavaOnevisionModel.apply_pooling(owner, torch.zeros(8, 729, dim))
    assert pooled.shape == (8, 196, dim)


# ---------------------------------------------------------------- the graph
def _shipped(phase, tag=""):
    from hwsim.ir import load

    name = f"llava-onevision-7b.{phase}{'.' + tag if tag else ''}.json.gz"
    return load(ROOT / "traces" / name)


def test_vision_flops_by_hand_default_image():
    """The tower runs 10 tiles of 729 tokens in one batch; every matmul and attention of
    the 26 SigLIP layers, the patch embedding and the projector, term by term."""
    g = _shipped("prefill").instantiate(batch=1, seq_len=6578, kv_len=0)
    assert g.header["segments"] == {"text": [0, 14], "visual": [14, 6565],
                                    "question": [6565, 6578]}
    tiles, n, d, f, heads, hd = 10, 729, 1152, 4304, 16, 72
    rows = tiles * n
    per_layer_matmul = 2 * rows * d * (3 * d) + 2 * rows * d * d + 2 * rows * d * f * 2
    per_layer_attention = tiles * heads * (2 * n * n * hd) * 2  # QKᵀ and PV, non-causal
    patch_embed = 2 * rows * (3 * 14 * 14) * d  # the conv as its im2col GEMM
    projector = 2 * rows * d * 3584 + 2 * rows * 3584 * 3584
    from hwsim.ir.kinds import flops

    def total(kind, where):
        return sum(flops(op) for op in g.ops if op.kind == kind and where(op.module or ""))

    layers = total("matmul", lambda m: ".encoder.layers." in m)
    attn = total("attention", lambda m: ".encoder.layers." in m)
    assert layers == 26 * per_layer_matmul
    assert attn == 26 * per_layer_attention
    assert total("matmul", lambda m: "embeddings" in m) == patch_embed
    assert total("matmul", lambda m: "multi_modal_projector" in m) == projector
    att = [op for op in g.ops if op.kind == "attention" and ".encoder.layers.0." in op.module]
    assert [(a.attrs["batch"], a.attrs["q_len"], a.attrs["causal"]) for a in att] == \
        [(tiles, n, False)]
    stacks = g.header["stacks"]
    assert stacks["vision"] == {"first_layer": 0, "num_layers": 26}
    assert stacks["language"]["num_layers"] == 28


def test_language_model_runs_on_every_visual_token():
    g = _shipped("prefill").instantiate(batch=2, seq_len=6600, kv_len=0)
    att = [op for op in g.ops if op.kind == "attention" and "language_model" in op.module]
    assert len(att) == 28
    assert {(a.attrs["batch"], a.attrs["heads"], a.attrs["kv_heads"], a.attrs["q_len"],
             a.attrs["causal"]) for a in att} == {(2, 28, 4, 6600, True)}


@pytest.mark.slow
def test_templates_equal_fresh_traces():
    pytest.importorskip("torch")
    from hwsim.trace import trace
    from hwsim.trace.template import compare

    for phase, size in (("prefill", {"batch": 2, "seq_len": 6590, "kv_len": 0}),
                        ("decode", {"batch": 2, "seq_len": 1, "kv_len": 40})):
        fresh = trace("llava-onevision-7b", phase=phase, **size)
        assert compare(_shipped(phase).instantiate(**size), fresh) == []


def test_small_traces_fit_templates_for_other_images_and_video():
    """Two layers per tower (quick): a reduced image and an 8-frame video make templates
    that equal a fresh trace at an unseen size (trace_template checks it)."""
    pytest.importorskip("torch")
    from hwsim.trace.template import trace_template

    video = trace_template("llava-onevision-7b", "prefill", layers=2, frames=8)
    assert video.header["template"]["min_seq_len"] == 14 + 8 * 196 + 1
    pooled = [op for op in video.instantiate(batch=1, seq_len=1600, kv_len=0).ops
              if op.kind == "elementwise" and op.attrs["fn"] == "bilinear"]
    assert [op.attrs["elements"] for op in pooled] == [8 * 196 * 3584]  # 2x2 bilinear pooling
    wide = trace_template("llava-onevision-7b", "prefill", layers=2, image=(1092, 1932))
    g = wide.instantiate(batch=1, seq_len=7300, kv_len=0)
    assert g.header["segments"]["visual"] == [14, 14 + 7269]
    resample = [op for op in g.ops if op.kind == "elementwise" and op.attrs["fn"] == "bilinear"]
    assert [op.attrs["elements"] for op in resample] == [3584 * 60 * 108]  # anyres_max_9
    tower = [op for op in g.ops if op.kind == "attention" and "vision_tower" in op.module]
    assert {op.attrs["batch"] for op in tower} == {19}


# ---------------------------------------------------------------- workloads, no torch
# What the tests read from each run: the language model's matmul and attention FLOPs
# outside the pruning machinery, and all its DRAM reads.
MEASURE = """
    def measure(r):
        ops = r.ops
        lm = [(int(f), int(b), k, p) for f, b, m, k, p in zip(
              ops["flops"], ops["dram_read_bytes"], ops["module"], ops["kind"],
              ops["pruning"]) if "language_model" in str(m) or str(m) == "lm_head"]
        plain = [(f, b) for f, b, k, p in lm if k in ("matmul", "attention")
                 and (not isinstance(p, str) or not p)]
        return {"lm_mm": sum(f for f, _ in plain), "lm_read": sum(x[1] for x in lm)}
"""

REMEDY = {"spatten": ["target.dram_bytes=32 GiB"]}  # 16 GB weights beyond its 8 GiB HBM2


def _run(cases):
    return simulate_without_torch(cases, MEASURE, timeout=900)


def test_every_target_without_torch_prefill_decode_divprune_and_video():
    wl = ROOT / "workloads"
    cases = []
    for name in ("llava-onevision-7b", "llava-onevision-7b-decode",
                 "llava-onevision-7b-divprune", "llava-onevision-7b-video"):
        for target in TARGETS:
            base = {"workload": str(wl / f"{name}.yaml"), "target": target}
            if target in REMEDY:
                cases.append({**base, "expect_refusal": True})
                base = {**base, "sets": REMEDY[target]}
            cases.append(base)
    flops: dict[str, set] = {}
    for run in _run(cases):
        where = f"{Path(run['workload']).stem} on {run['target']}"
        if not simulated(run, where):
            continue
        flops.setdefault(run["workload"], set()).add(run["flops"])
    assert all(len(v) == 1 for v in flops.values()), flops  # the graph's, on any target


def _lm_layer(n):
    """Qwen2-7B matmul + attention FLOPs of one layer on n tokens (the counted
    convention): q and o (d x d), k and v (d x 512: 4 KV heads of 128), gate, up and
    down (d x m each), and attention 4·n²·d (QKᵀ and PV over 28 heads of 128, the
    full square)."""
    d, m, kv = 3584, 18944, 512
    return 2 * n * (2 * d * d + 2 * d * kv + 3 * d * m) + 4 * n * n * d


LM_HEAD = 2 * 1 * 3584 * 152128  # logits: last, one row


def test_token_pruning_prunes_only_visual_tokens_by_the_expected_amount():
    wl = ROOT / "workloads"
    names = ("", "-divprune", "-fastv", "-hawk", "-topv")
    runs = {Path(r["workload"]).stem: r for r in _run(
        [{"workload": str(wl / f"llava-onevision-7b{n}.yaml"), "target": "roofline"}
         for n in names])}
    dense = runs["llava-onevision-7b"]
    assert "error" not in dense, dense
    text, visual = 27, 6551
    assert dense["lm_mm"] == 28 * _lm_layer(text + visual) + LM_HEAD
    # kept visual tokens, rounded half up: 9.8 %, 50 %, 19.8 %, 22.2 % of 6,551; the
    # text prefix and question (27 tokens) always kept; layers before `at` run dense
    kept = {"-divprune": (0, 642), "-fastv": (2, 3276), "-hawk": (0, 1297), "-topv": (2, 1454)}
    for name, (at, k) in kept.items():
        run = runs[f"llava-onevision-7b{name}"]
        assert "error" not in run, run
        expect = at * _lm_layer(text + visual) + (28 - at) * _lm_layer(text + k) + LM_HEAD
        assert run["lm_mm"] == expect, (name, run["lm_mm"], expect)
        assert run["lm_read"] < dense["lm_read"], name
