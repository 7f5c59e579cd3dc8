"""A vision-language workload's image: ``image``, ``frames`` and ``text_len``.

The fields are checked by the loader without torch, the image reaches the
builder and the template key (another image is another graph), and LLaVA-1.5,
whose processor makes every image 336x336, is unchanged.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_workload import one_problem

from hwsim import zoo
from hwsim.trace import hub, images
from hwsim.workload import build_graph, load_workload

LLAVA = {"model": "llava-1.5-7b"}


# ---------------------------------------------------------------- the rules
@pytest.mark.parametrize("given, resized, tokens", [
    # Full HD: round(1080/28) = 39 (38.57), round(1920/28) = 69 (68.57): 39x69 tokens
    ((1080, 1920), (1092, 1932), 39 * 69),
    ((1092, 1932), (1092, 1932), 39 * 69),
    # 448 = 16 x 28: exact, 16x16 = 256 tokens
    ((448, 448), (448, 448), 256),
])
def test_qwen25vl_resize_and_tokens(given, resized, tokens):
    rule = images.QWEN25_VL
    assert images.smart_resize(*given) == resized
    layout = rule.layout(given)
    assert layout.visual == tokens
    assert layout.image == resized
    assert layout.min_seq_len == 15 + tokens


def test_qwen25vl_default_image_is_full_hd():
    layout = images.QWEN25_VL.layout(None)
    assert layout.image == (1092, 1932)
    assert layout.visual == 2691  # 39 x 69
    rows, cols = images.qwen25vl_grid(*layout.image)
    assert rows * cols == 10764  # 78 x 138 patches of 14 px


def test_tags_key_the_processed_size():
    rule = images.QWEN25_VL
    assert images.tag(rule, None) == ""
    assert images.tag(rule, (1080, 1920)) == ""  # resized to the default's 1092x1932
    assert images.tag(rule, (1092, 1932)) == ""
    assert images.tag(rule, (450, 440)) == "448x448"  # round(450/28)=16, round(440/28)=16
    assert images.tag(images.LLAVA_15, (1000, 2000)) == ""  # always 336x336
    a = hub.image_template_path("qwen2.5-vl-7b", "prefill", "448x448")
    b = hub.image_template_path("qwen2.5-vl-7b", "prefill", "476x476")
    assert a != b and "448x448" in a.name


# ---------------------------------------------------------------- the loader
def test_llava_unchanged_and_text_len(write_workload):
    wl = load_workload(write_workload({**LLAVA, "seq_len": 640}))
    assert (wl.seq_len, wl.image, wl.frames, wl.text_len) == (640, {}, 0, 0)
    # text_len = 35 prefix + 29 question tokens; seq_len adds the 576 visual tokens
    wl = load_workload(write_workload({**LLAVA, "text_len": 64}))
    assert wl.seq_len == 64 + 576
    # any image: LLaVA-1.5 resizes it to 336x336, the same graph
    wl = load_workload(write_workload({**LLAVA, "seq_len": 640,
                                       "image": {"height": 1080, "width": 1920}}))
    assert zoo.image_tag(wl.model, wl.phase, (1080, 1920)) == ""
    g = build_graph(wl)
    assert g.header["segments"] == {"text": [0, 35], "visual": [35, 611],
                                    "question": [611, 640]}


def test_seq_len_below_the_image_states_the_minimum(write_workload):
    msg = one_problem(write_workload({**LLAVA, "seq_len": 600}), "seq_len",
                      "35 text-prefix + 576 visual tokens", "seq_len >= 611", "got 600",
                      "text_len")
    assert "\n" not in msg


@pytest.mark.parametrize("extra, field, needles", [
    ({"image": {"height": 0, "width": 10}}, "image.height", ("from 1 to 65,536", "got 0")),
    ({"image": {"height": 10.5, "width": 10}}, "image.height", ("whole number", "10.5")),
    ({"image": {"height": 10, "width": True}}, "image.width", ("whole number",)),
    ({"image": {"height": 10, "width": 10 ** 6}}, "image.width", ("65,536",)),
    ({"image": {"height": 10}}, "image.width", ("missing",)),
    ({"image": {"height": 10, "width": 10, "depth": 3}}, "image.depth", ("height and width",)),
    ({"image": [336, 336]}, "image", ("mapping",)),
    ({"frames": 8}, "frames", ("LLaVA-1.5", "still image")),
    ({"frames": 0}, "frames", ("from 1",)),
    ({"frames": 10 ** 6}, "frames", ("4,096",)),
    ({"text_len": 20}, "text_len", ("35 prefix", ">= 35", "got 20")),
    ({"text_len": 64, "seq_len": 700}, "text_len", ("not both",)),
    ({"text_len": 64, "phase": "decode", "seq_len": 1, "kv_len": 700}, "text_len",
     ("decode",)),
])
def test_image_field_errors(write_workload, extra, field, needles):
    data = {**LLAVA, "seq_len": 640, **extra}
    if "text_len" in extra and "seq_len" not in extra:
        data.pop("seq_len")
    one_problem(write_workload(data), field, *needles)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "gpt2"])
def test_only_vision_language_models_take_an_image(write_workload, model):
    one_problem(write_workload({"model": model, "image": {"height": 336, "width": 336}}),
                "image", f"model {model} reads no image", "llava-1.5-7b")
    one_problem(write_workload({"model": model, "frames": 4}), "frames", "reads no image")


def test_ops_workload_takes_no_image(write_workload):
    one_problem(write_workload({"ops": [{"kind": "matmul", "m": 2, "n": 2, "k": 2}],
                                "image": {"height": 336, "width": 336}}),
                "image", "only a model: workload")


def test_shipped_templates_of_other_images_are_found(tmp_path, monkeypatch):
    """``{model}.{phase}.{tag}.json.gz`` in a traces folder is that image's template."""
    src = zoo.shipped_path("llava-1.5-7b", "prefill")
    (tmp_path / "llava-1.5-7b.prefill.448x448.json.gz").write_bytes(src.read_bytes())
    monkeypatch.setenv("HWSIM_TRACES", str(tmp_path))
    zoo._shipped.cache_clear()
    try:
        assert zoo.shipped_path("llava-1.5-7b", "prefill", "448x448") == \
            tmp_path / "llava-1.5-7b.prefill.448x448.json.gz"
        assert zoo.shipped_tags("llava-1.5-7b", "prefill") == ["", "448x448"]
        assert zoo.phases("llava-1.5-7b") == ("prefill", "decode")
    finally:
        monkeypatch.delenv("HWSIM_TRACES")
        zoo._shipped.cache_clear()


@pytest.mark.parametrize("extra", [{"model": "llama-2-7b", "seq_len": 64},
                                   {**LLAVA, "text_len": 64},
                                   {**LLAVA, "seq_len": 700,
                                    "image": {"height": 1080, "width": 1920}}])
def test_a_workload_reads_back_from_its_dict(extra):
    """Sweeps and --set rebuild a loaded workload from to_dict(): it must load back equal
    (unset image fields and the text_len already turned into seq_len are left out)."""
    from hwsim.workload import workload_from_dict

    wl = workload_from_dict(extra, "<t>")
    data = wl.to_dict()
    data.pop("source", None)
    assert "text_len" not in data
    back = workload_from_dict(data, "<t>")
    assert dataclasses.replace(back, text_len=wl.text_len) == wl and back.seq_len == wl.seq_len


def test_set_text_len_replaces_seq_len_and_back():
    from hwsim.workload import apply_sets, workload_from_dict

    wl = workload_from_dict({**LLAVA, "seq_len": 640}, "<t>")
    data = {k: v for k, v in wl.to_dict().items() if k != "source"}
    assert workload_from_dict(apply_sets(data, [("text_len", 100)]), "<t>").seq_len == 676
    assert workload_from_dict(apply_sets(data, [("seq_len", 700)]), "<t>").seq_len == 700
