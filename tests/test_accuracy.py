"""Published quality beside cost (issue 19 item 4): the shipped table, its checks, the
exact lookup, and its place in reports, sweeps and Pareto fronts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

import hwsim
import hwsim.plot as hp
from hwsim import accuracy
from hwsim.errors import InputError

HEADER = ",".join(accuracy.COLUMNS)
GOOD = ("fastervlm,llava-1.5-7b,58,576,0.1,,gqa,accuracy %,54.91,61.94,paper,Table 1 row x,"
        "P,read,")


def test_shipped_table_loads_and_every_row_names_its_source():
    rows = accuracy.load()
    assert len(rows) >= 300
    for r in rows:
        assert r.source and r.locator and r.verified and r.source_short
        assert 0 < r.tokens_kept <= r.tokens_total and 0 < r.keep <= 1
        assert math.isfinite(r.score) and math.isfinite(r.dense_score)
    assert {"fastv", "fastervlm", "sparsevlm"} <= {r.method for r in rows}


def test_lookup_matches_exactly_and_never_interpolates():
    # FasterVLM EVAL.md, LLaVA-1.5-7B, "FasterVLM 90% 58", GQA 54.91 against 61.94
    row = accuracy.published_quality("fastervlm", "llava-1.5-7b", 58, "gqa")
    assert (row.score, row.dense_score, row.tokens_kept) == (54.91, 61.94, 58)
    assert "2412.01818" in row.source and "GQA" in row.locator
    assert accuracy.published_quality("fastervlm", "llava-1.5-7b", 0.1, "gqa") == row
    assert accuracy.published_quality("FasterVLM", "LLaVA-1.5-7B", {"tokens": 58}, "GQA") == row
    # 57 (hwsim's int(57.6)) and 0.3 lie between published settings: no row
    assert accuracy.published_quality("fastervlm", "llava-1.5-7b", 57, "gqa") is None
    assert accuracy.published_quality("fastervlm", "llava-1.5-7b", 0.3, "gqa") is None
    why = accuracy.no_row_reason("fastervlm", "llava-1.5-7b", 57, "gqa")
    assert "57 tokens kept" in why and "58 of 576" in why and "never interpolated" in why
    assert "none for this method" in accuracy.no_row_reason("divprune", "llava-1.5-7b", 56)
    # a parameter the row states must match: FastV's README rows are K=3
    assert accuracy.published_quality("fastv", "llava-1.5-7b",
                                      {"tokens": 288, "at_layer": 3}, "mmmu").score == 35.2
    assert accuracy.published_quality("fastv", "llava-1.5-7b",
                                      {"tokens": 288, "at_layer": 2}, "mmmu") is None


@pytest.mark.parametrize("line,field,words", [
    (GOOD.replace("54.91", "nan"), "line 2.score", "finite"),
    (GOOD.replace("54.91", "high"), "line 2.score", "a number"),
    (GOOD.replace(",58,576,", ",600,576,"), "line 2.tokens_kept", "tokens_kept <="),
    (GOOD.replace(",0.1,", ",1.5,"), "line 2.keep", "(0, 1]"),
    (GOOD.replace("paper,", ","), "line 2.source", "must not be empty"),
    (GOOD.replace(",0.1,,", ",0.1,at_layer,"), "line 2.params", "name=value"),
    (GOOD + ",extra", "line 2", "fields"),
])
def test_hostile_table_is_one_line_naming_file_line_and_field(tmp_path, line, field, words):
    path = tmp_path / "q.csv"
    path.write_text(f"{HEADER}\n{line}\n")
    with pytest.raises(InputError) as e:
        accuracy.load(path)
    text = str(e.value)
    assert "\n" not in text and str(path) in text and field in text and words in text


def test_hostile_table_header_and_duplicates(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("method,model\nx,y\n")
    with pytest.raises(InputError, match="missing column"):
        accuracy.load(path)
    path.write_text(f"# c\n{HEADER}\n{GOOD}\n{GOOD}\n")
    with pytest.raises(InputError, match="line 4: a second row"):
        accuracy.load(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="cannot read"):
        accuracy.load(path)


def test_report_carries_the_published_quality_or_says_there_is_none():
    wl = str(ROOT / "workloads" / "llava-1.5-7b-fastervlm.yaml")
    r = hwsim.simulate(wl, target="roofline", fidelity="analytical",
                       sets={"pruning": [{"method": "fastervlm", "keep": 58 / 576,
                                          "segment": "visual"}]})
    q = r.to_dict()["pruning"]["published_quality"]
    gqa = next(x for x in q["rows"] if x["benchmark"] == "gqa")
    assert (gqa["score"], gqa["dense_score"]) == (54.91, 61.94)
    assert "published    " in r.table() and "EVAL.md" in r.table()
    page = r.to_html()
    assert "Published quality" in page and "row &#x27;FasterVLM 90% 58&#x27;" in page
    r57 = hwsim.simulate(wl, target="roofline", fidelity="analytical",  # keep 0.1: 57 kept
                         sets={"pruning": [{"method": "fastervlm", "keep": 0.1,
                                            "segment": "visual"}]})
    q57 = r57.to_dict()["pruning"]["published_quality"]
    assert q57["rows"] == [] and "57 tokens kept" in q57["note"]
    assert "no published quality" in r57.table()


def test_sweep_rows_get_quality_columns(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"workload: {ROOT / 'workloads' / 'llava-1.5-7b-fastervlm.yaml'}\n"
                    "target: roofline\naxes:\n  pruning.0.keep: [0.1, 0.1007, 0.25]\n")
    df = hwsim.sweep(str(spec), str(tmp_path / "out.parquet"), workers=1, progress=False)
    df = df.sort_values("pruning.0.keep").reset_index(drop=True)
    assert math.isnan(df.loc[0, "quality_gqa"]) and "57 tokens kept" in df.loc[0, "quality_note"]
    assert df.loc[1, "quality_gqa"] == 54.91 and df.loc[1, "quality_source"] == \
        "FasterVLM EVAL.md"
    assert df.loc[2, "quality_pope"] == 83.46  # 144 of 576: "FasterVLM 75% 144", POPE
    # hwsim plot draws latency against the quality most points have, maximized
    names = [name for name, fig in hp.figures(df, kinds=("pareto",))]
    assert "pareto-quality-average-rel-10" in names


def test_pareto_maximizes_quality():
    df = pd.DataFrame({"latency_s": [1.0, 2.0, 3.0, 2.5], "quality_gqa": [50.0, 60.0, 55.0, 61.0]})
    # minimized both ways, the fastest is alone on the front; maximizing quality,
    # the slow but better points join it and the dominated one (3 s, 55) drops out
    assert hp.pareto_mask(df, ("latency_s", "quality_gqa")).tolist() == \
        [True, False, False, False]
    front = hp.pareto_mask(df, ("latency_s", "quality_gqa"), ("quality_gqa",))
    assert front.tolist() == [True, True, False, True]
    with pytest.raises(ValueError, match="not objectives"):
        hp.pareto_mask(df, ("latency_s", "quality_gqa"), ("energy_j",))
    fig = hp.pareto(df.assign(workload="w", dense_flops=1, status="ok"),
                            ("latency_s", "quality_gqa"), maximize=("quality_gqa",))
    ax = fig.axes[0]
    assert "(max)" in ax.get_title() and ax.get_ylabel() == "published gqa score"
    line = [ln for ln in ax.get_lines() if ln.get_drawstyle().startswith("steps")][0]
    assert np.allclose(line.get_xdata(), [1.0, 2.0, 2.5])


def test_two_sources_stay_apart():
    # SparseVLM's own Table 1 (project page): FastV keeping 64 tokens, SQA 55.1 (copies
    # elsewhere read 51.1); FasterVLM's table has no 64-token setting
    row = accuracy.published_quality("fastv", "llava-1.5-7b", 64, "sqa")
    assert (row.score, row.dense_score, row.source_short) == (55.1, 69.5, "SparseVLM page T1")
    assert accuracy.published_quality("fastv", "llava-1.5-7b", 64 / 576, "gqa").score == 46.1
    assert accuracy.published_quality("fastv", "llava-1.5-7b", 58, "sqa") is None
    # the two tables' dense GQA differ (61.94, 61.9): a dense point gets no single value
    q = accuracy.quality_columns({"model": "llava-1.5-7b"})
    assert q["quality_gqa"] is None and "disagree" in q["quality_note"]
    assert q["quality_mm_vet"] == 31.3  # one source only
