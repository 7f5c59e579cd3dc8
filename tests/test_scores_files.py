"""Scores files from any model: the format, its checks, and what a workload does with one.

No weights can be downloaded here, so the files are synthesized in the documented
format with the shapes of GPT-2 small and TinyLlama-1.1B (random logits through a
softmax, a few tokens favoured as real models favour the first ones): what is tested is
that a file of a model other than MiniLM drives a seeded SpAtten run and a schedule, and
that a file of the wrong model, or a hostile one, is a one-line error naming it.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import hwsim
from hwsim.cli.main import main
from hwsim.errors import InputError
from hwsim.ir.scores import Scores, read_scores, write_scores
from hwsim.pruning import apply
from hwsim.pruning.plan import kept
from hwsim.pruning.schedules import threshold_schedule, write_schedule
from hwsim.workload import build_graph, load_workload

GPT2_SHAPE = (12, 12, 48)  # layers, heads, tokens
TINYLLAMA_SHAPE = (22, 32, 48)


def synthetic(model: str, shape: tuple[int, int, int], seed: int = 0) -> Scores:
    """Probabilities ``[layer, head, query, key]`` of a causal model: each row a softmax
    over the keys at or before its query, the first tokens favoured."""
    layers, heads, n = shape
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, heads, n, n))
    logits[..., :4] += 2.0
    logits = np.where(np.tril(np.ones((n, n), bool)), logits, -np.inf)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return Scores(p.astype(np.float32), tuple(f"t{i}" for i in range(n)), model, "synthetic")


def _workload(path, model: str, n: int, step: dict, dtype: str = "fp16"):
    path.write_text(json.dumps({"model": model, "seq_len": n, "dtype": dtype,
                                "pruning": [step]}), encoding="utf-8")
    return path


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_gpt2_scores_file_round_trips_with_its_model_and_shape(tmp_path, suffix):
    s = synthetic("gpt2", GPT2_SHAPE)
    write_scores(tmp_path / f"s{suffix}", s)
    back = read_scores(tmp_path / f"s{suffix}")
    assert (back.model, back.layers, back.heads, back.length) == ("gpt2", 12, 12, 48)
    assert np.allclose(back.attention, s.attention, atol=1e-6)
    assert back.tokens == s.tokens


def test_gpt2_scores_drive_the_schedule_and_a_seeded_spatten_run(tmp_path):
    scores = synthetic("gpt2", GPT2_SHAPE)
    write_scores(tmp_path / "gpt2.npz", scores)
    want = threshold_schedule(scores.attention, 0.8)
    assert want[0] == 1.0 and want[-1] < 1.0  # the synthetic attention prunes something
    # a workload takes the scores by a path relative to itself
    wl = load_workload(_workload(tmp_path / "wl.json", "gpt2", 48,
                                 {"method": "spatten", "scores": "gpt2.npz", "mass": 0.8},
                                 dtype="fp32"))
    g = apply(build_graph(wl), wl.pruning, wl.source)
    rec = g.header["pruning"][0]
    assert rec["tokens_per_layer"] == [kept(48, f) for f in want]
    assert "(gpt2)" in rec["schedule"] and "stretched" not in rec["schedule"]
    assert rec["scores_path"] == str(tmp_path / "gpt2.npz")
    # the schedule written from the same scores gives the same cascade
    write_schedule(tmp_path / "gpt2-schedule.json", want, model="gpt2")
    wl2 = load_workload(_workload(tmp_path / "wl2.json", "gpt2", 48,
                                  {"method": "spatten", "schedule": "gpt2-schedule.json"}))
    g2 = apply(build_graph(wl2), wl2.pruning, wl2.source)
    assert g2.header["pruning"][0]["tokens_per_layer"] == rec["tokens_per_layer"]
    # seeded SpAtten: the cascade's top-k runs on these scores, from any working directory
    path = tmp_path / "wl.json"
    seeded = hwsim.simulate(path, "spatten", sets=["target.topk_mode=seeded"],
                            fidelity="analytical")
    expected = hwsim.simulate(path, "spatten", fidelity="analytical")
    tk_s = seeded.ops[seeded.ops["kind"] == "topk"]
    tk_e = expected.ops[expected.ops["kind"] == "topk"]
    assert len(tk_s) >= 3 and tk_s["detail"].str.contains("real scores").all()
    assert list(tk_s["latency_s"]) != list(tk_e["latency_s"])
    # other scores of the same model: other top-k cycles
    write_scores(tmp_path / "gpt2.npz", synthetic("gpt2", GPT2_SHAPE, seed=7))
    other = hwsim.simulate(path, "spatten", sets=["target.topk_mode=seeded"],
                           fidelity="analytical")
    assert other.graph.header["pruning"][0]["scores_path"] == str(tmp_path / "gpt2.npz")
    tk_o = other.ops[other.ops["kind"] == "topk"]
    assert tk_o["detail"].str.contains("real scores").all()


def test_tinyllama_scores_drive_a_tinyllama_schedule(tmp_path):
    scores = synthetic("tinyllama-1.1b", TINYLLAMA_SHAPE)
    write_scores(tmp_path / "tl.npz", scores)
    wl = load_workload(_workload(tmp_path / "wl.json", "tinyllama-1.1b", 48,
                                 {"method": "spatten", "scores": "tl.npz", "mass": 0.8}))
    g = apply(build_graph(wl), wl.pruning, wl.source)
    want = threshold_schedule(scores.attention, 0.8)
    assert g.header["pruning"][0]["tokens_per_layer"] == [kept(48, f) for f in want]


@pytest.mark.parametrize("scores, what", [
    (synthetic("tinyllama-1.1b", TINYLLAMA_SHAPE), "model 'tinyllama-1.1b', expected 'gpt2'"),
    (synthetic("gpt2", (6, 12, 48)), "layers 6, expected 12"),
    (synthetic("gpt2", (12, 8, 48)), "heads 8, expected 12"),
    (synthetic("gpt2", (12, 12, 40)), "tokens 40, expected 48"),
    (synthetic("minilm-l6", (6, 12, 48)), "model 'minilm-l6', expected 'gpt2'"),
])
def test_scores_of_another_model_are_a_one_line_error(tmp_path, capsys, scores, what):
    write_scores(tmp_path / "s.npz", scores)
    wl = _workload(tmp_path / "wl.json", "gpt2", 48, {"method": "spatten", "scores": "s.npz"})
    err = _one_line_error(capsys, ["simulate", str(wl), "--target", "roofline"])
    assert "wl.json" in err and "pruning.0.scores" in err and "s.npz" in err, err
    assert what in err and "record_scores" in err, err


def _hostile_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _huge_header_npz(path):
    """An archive whose attention header claims 2^30 probabilities (and holds none)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (32, 32, 1024, 1024)}
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(b"\0" * 16)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("attention.npy", buf.getvalue())
        z.writestr("model.npy", _npy(np.array("gpt2")))
    return path


def _npy(a) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _nan_scores():
    s = synthetic("gpt2", GPT2_SHAPE)
    a = s.attention.copy()
    a[3, 2, 5, 1] = np.nan
    return a


HOSTILE = {
    "nan": (lambda p: _hostile_npz(p / "s.npz", attention=_nan_scores(), model=np.array("gpt2")),
            "attention", "not finite"),
    "not probabilities": (lambda p: _hostile_npz(
        p / "s.npz", attention=synthetic("gpt2", GPT2_SHAPE).attention * 3,
        model=np.array("gpt2")), "attention", "[0, 1]"),
    "rows not summing to one": (lambda p: _hostile_npz(
        p / "s.npz", attention=synthetic("gpt2", GPT2_SHAPE).attention * 0.5,
        model=np.array("gpt2")), "attention", "sums to 1"),
    "integers": (lambda p: _hostile_npz(
        p / "s.npz", attention=np.ones((12, 12, 48, 48), np.int32), model=np.array("gpt2")),
        "attention", "floating-point"),
    "no model": (lambda p: _hostile_npz(
        p / "s.npz", attention=synthetic("gpt2", GPT2_SHAPE).attention),
        "model", "missing"),
    "model not a string": (lambda p: _hostile_npz(
        p / "s.npz", attention=synthetic("gpt2", GPT2_SHAPE).attention, model=np.arange(3)),
        "model", "expected a string"),
    "three dimensions": (lambda p: _hostile_npz(
        p / "s.npz", attention=np.ones((12, 48, 48), np.float32) / 48, model=np.array("gpt2")),
        "attention", "[layers, heads, tokens, tokens]"),
    "huge": (lambda p: _huge_header_npz(p / "s.npz"), "attention", "at most"),
    "not an archive": (lambda p: (p / "s.npz").write_bytes(b"\x00garbage" * 10) and
                       p / "s.npz", "", "not a scores file"),
    "json strings": (lambda p: (p / "s.json").write_text(json.dumps(
        {"schema": "hwsim.scores/1", "model": "gpt2", "attention": [["a", "b"]]})) and
        p / "s.json", "attention", "numbers"),
    "json wrong schema": (lambda p: (p / "s.json").write_text(json.dumps(
        {"schema": "other/9", "model": "gpt2", "attention": [[[[1.0]]]]})) and p / "s.json",
        "schema", "hwsim.scores/1"),
    "json a list": (lambda p: (p / "s.json").write_text("[1, 2]") and p / "s.json", "",
                    "JSON object"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_scores_file_is_a_one_line_error(tmp_path, capsys, case):
    make, field, what = HOSTILE[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as e:
        read_scores(path)
    (problem,) = e.value.problems
    assert problem.source == str(path) and problem.field == field and what in problem.message
    wl = _workload(tmp_path / "wl.json", "gpt2", 48,
                   {"method": "spatten", "scores": path.name})
    err = _one_line_error(capsys, ["simulate", str(wl), "--target", "roofline"])
    assert path.name in err and what in err, err


def test_a_json_scores_file_past_its_size_bound_is_refused_before_it_is_parsed(
        tmp_path, monkeypatch):
    from hwsim.ir import scores

    write_scores(tmp_path / "s.json", synthetic("gpt2", (1, 1, 4)))
    monkeypatch.setattr(scores, "MAX_SCORES_JSON_BYTES", 64)
    with pytest.raises(InputError, match="JSON scores file holds at most 64"):
        read_scores(tmp_path / "s.json")


def test_record_scores_needs_local_weights_and_says_so_in_one_line(tmp_path, capsys):
    pytest.importorskip("transformers")
    from hwsim.trace.record_scores import main as record_main

    rc = record_main(["gpt2", "--weights", str(tmp_path / "absent"), "--prompt", "Hello.",
                      "-o", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--weights" in err, err
    assert not (tmp_path / "s.npz").exists()
