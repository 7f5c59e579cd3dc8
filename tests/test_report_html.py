"""The HTML report: self-contained (nothing fetched), its figures and numbers right,
and rendered by a real browser (headless Chromium) with its script run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from conftest import dump_yaml, run_hwsim

import hwsim
from hwsim.report import html as report_html
from hwsim.report.groups import group_ops
from hwsim.report.svg import bin_marks, gantt
from hwsim.report.table import FIDELITY, si
from hwsim.workload import workload_from_dict

GPT2_FASTV = {"model": "gpt2", "seq_len": 64,
              "segments": {"text": [0, 8], "visual": [8, 56], "question": [56, 64]},
              "pruning": [{"method": "fastv", "at_layer": 2, "keep": 0.5, "segment": "visual"}]}


@pytest.fixture(scope="module")
def pruned():
    """GPT-2 with FastV at layer 2, beside its unpruned run, events on a V100."""
    return hwsim.simulate(workload_from_dict(GPT2_FASTV), "volta", baseline=True)


@pytest.fixture(scope="module")
def page(pruned):
    return pruned.to_html()


class _Collect(HTMLParser):
    """Tags, attributes and text of a page, and whether it is well nested."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr", "source", "area"}

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    p.close()
    return p


def svgs(text: str) -> list[ET.Element]:
    """Every inline figure, parsed as the XML it must be."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", text, flags=re.S)]


# ------------------------------------------------------------------ offline, well formed
def test_the_page_fetches_nothing_and_is_well_formed(page):
    p = parse(page)
    assert p.stack == []  # every element closed, in order
    for tag, attrs in p.tags:
        assert tag not in {"link", "img", "iframe", "object", "embed"}, tag
        for name in ("src", "href"):
            assert not attrs.get(name), (tag, attrs)  # nothing loaded from anywhere
    assert "@import" not in page and "url(" not in page
    assert [t for t, a in p.tags if t == "script" and a.get("src")] == []
    figures = svgs(page)
    assert len(figures) >= 8
    ns = "{http://www.w3.org/2000/svg}"
    assert all(f.tag == f"{ns}svg" for f in figures)
    # every mark says what it is
    marks = [m for f in figures for m in f.iter() if m.tag in (f"{ns}rect", f"{ns}circle")]
    assert marks and all(m.find(f"{ns}title") is not None for m in marks
                         if m.get("fill") != "none")


# ------------------------------------------------------------------ what it says
def test_totals_fidelity_and_breakdowns_are_the_reports(pruned, page):
    t = pruned.totals
    text = " ".join(parse(page).text)
    for key, unit in (("latency_s", "s"), ("energy_j", "J"), ("flops", "FLOP"),
                      ("dram_read_bytes", "B")):
        assert si(t[key], unit) in text
    assert f"{t['cycles']:,}" in text
    assert FIDELITY["event"] in text
    assert "By op kind" in text and "By layer" in text
    kinds = {row["kind"] for row in pruned.rows}
    for kind in kinds:
        assert f">{kind}</td>" in page or f"</span>{kind}</td>" in page


def test_baseline_and_pruning_schedule(pruned, page):
    assert "Pruned against unpruned" in page
    b = pruned.baseline.totals
    ratio = pruned.totals["latency_s"] / b["latency_s"]
    assert f"{ratio:.3f}" in page and si(b["latency_s"], "s") in page
    assert "Pruning schedule" in page and "fastv(at_layer=2, keep=0.5" in page
    # the tokens chart: one column per layer of the stack, kept tokens as the record says
    rec = pruned.pruning["steps"][0]
    kept = re.findall(r"<title>L(\d+): tokens kept (\d+) </title>", page)
    assert [int(n) for _, n in kept] == rec["tokens_per_layer"]
    unpruned = hwsim.simulate(workload_from_dict({**GPT2_FASTV, "pruning": []}), "volta")
    plain = unpruned.to_html()
    assert "Pruning schedule" not in plain and "Pruned against unpruned" not in plain


def test_roofline_uses_the_targets_ceilings_and_every_distinct_op(pruned, page):
    target, spec = pruned.target.target, pruned.target.spec
    peaks, bw = report_html.ceilings(pruned)
    assert peaks[0] == ("peak fp16", target.peak_flops_per_s(spec, "fp16"))
    assert bw == ("DRAM", target.peak_dram_bw_bytes_per_s(spec))
    assert f"peak fp16 {si(peaks[0][1], 'FLOP/s')}" in page
    assert f"DRAM {si(bw[1], 'B/s')}" in page
    roof = next(f for f in svgs(page) if f.get("aria-label") == "roofline")
    ns = "{http://www.w3.org/2000/svg}"
    points = [c.find(f"{ns}title") for c in roof.iter(f"{ns}circle") if c.get("class") == "point"]
    drawn = [g for g in group_ops(pruned)
             if g.executed_flops > 0 and g.dram_bytes > 0 and g.latency_s > 0]
    assert len(points) == len(drawn) > 5
    tips = [p.text for p in points]
    for g in drawn:
        assert any(tip.startswith(f"{g.name} ({g.kind}, {g.count} op") for tip in tips)


def test_the_timeline_is_the_chrome_traces_events(pruned, page):
    from hwsim.report.chrome import chrome_events

    run = next(f for f in svgs(page) if f.get("aria-label") == "the run's ops")
    ns = "{http://www.w3.org/2000/svg}"
    rects = run.findall(f"{ns}rect")
    ops = [e for e in chrome_events(pruned) if e["ph"] == "X" and e["tid"] == 1]
    # one mark per op, or fewer where ops narrower than a pixel were merged
    assert 0 < len(rects) <= len(ops) + len(pruned.host_lane)
    assert any(r.find(f"{ns}title").text.startswith(ops[0]["name"]) for r in rects)
    inside = [f for f in svgs(page) if (f.get("aria-label") or "").startswith("tasks of ")]
    assert 1 <= len(inside) <= report_html.OP_TIMELINES
    top = max(group_ops(pruned), key=lambda g: g.total_latency_s)
    assert inside[0].get("aria-label") == f"tasks of {top.name}"


def test_analytical_pages_say_there_is_no_task_timeline():
    r = hwsim.simulate(workload_from_dict(GPT2_FASTV), "roofline", fidelity="analytical")
    page = r.to_html()
    assert "No task timeline" in page and FIDELITY["analytical"] in page.replace("&#x27;", "'")


def test_several_targets_are_one_page_with_a_section_each(tmp_path):
    wl = workload_from_dict({"model": "gpt2", "seq_len": 32})
    reports = [hwsim.simulate(wl, t) for t in ("roofline", "armv8")]
    page = report_html.to_html(reports)
    p = parse(page)
    sections = [a for t, a in p.tags if t == "section"]
    assert len(sections) == 2 and len({a["id"] for a in sections}) == 2
    assert "Targets side by side" in page
    for r in reports:
        assert f"on {r.target.preset} ({r.target.name})" in page
        assert si(r.totals["latency_s"], "s") in page


def test_a_generation_shows_its_request_and_steps():
    wl = workload_from_dict({"model": "gpt2", "phase": "generate", "seq_len": 32,
                             "new_tokens": 6})
    g = hwsim.simulate(wl, "roofline")
    page = g.to_html()
    assert "Decode steps" in page and "TTFT" in page and "TPOT p99" in page
    assert "gpt2 on roofline-v100 (roofline)" in page  # named by its model
    assert si(g.totals["ttft_s"], "s") in page
    steps = next(f for f in svgs(page) if f.get("aria-label") == "latency per decode step")
    assert steps.find("{http://www.w3.org/2000/svg}path") is not None


# ------------------------------------------------------------------ Jupyter
def test_jupyter_shows_a_compact_fragment(pruned):
    frag = pruned._repr_html_()
    assert frag.startswith('<div class="hwsim-report">') and frag.endswith("</div>")
    assert "<html" not in frag and "<script" not in frag and "<body" not in frag
    assert si(pruned.totals["latency_s"], "s") in frag and "Roofline" in frag
    assert "Timeline" not in frag  # the page has it; a cell stays short
    assert parse(frag).stack == []  # well nested, every element closed
    assert len(frag) < len(pruned.to_html()) / 2
    # its styles only reach the report's own elements
    css = re.search(r"<style>(.*?)</style>", frag, re.S).group(1)
    selectors = [s.strip() for rule in re.findall(r"([^{}]+)\{", css) for s in rule.split(",")]
    assert selectors and all(s.startswith(".hwsim-report") for s in selectors)


# ------------------------------------------------------------------ figures stay small
def test_marks_narrower_than_a_pixel_merge():
    marks = [(i * 0.01, i * 0.01 + 0.01, "#000", f"op {i}") for i in range(10_000)]
    merged = bin_marks(marks)
    assert len(merged) <= 101  # 100 pixels of marks
    assert merged[0][0] == 0.0 and merged[-1][1] == pytest.approx(100.0)
    assert "marks narrower than a pixel" in merged[0][3]
    wide = [(0.0, 5.0, "#000", "a"), (5.0, 10.0, "#111", "b")]
    assert bin_marks(wide) == wide
    figure = gantt([("lane", [(i * 1e-6, (i + 1) * 1e-6, "#000", "t")
                              for i in range(100_000)])], 0.1, width=500)
    assert figure.count("<rect") <= 500


# ------------------------------------------------------------------ the command line
def test_cli_writes_the_page_and_refuses_a_missing_folder(tmp_path, kernel_workload):
    out = tmp_path / "r.html"
    r = run_hwsim("simulate", str(kernel_workload), "--target", "roofline,roofline-910b",
                  "--html", str(out))
    assert r.returncode == 0, r.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<section") == 2
    r = run_hwsim("simulate", str(kernel_workload), "--html", str(tmp_path / "no" / "r.html"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "r.html" in r.stderr


# ------------------------------------------------------------------ a real browser
def _chromium() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome",
                                           "chrome") if shutil.which(b)), None)


def test_a_headless_browser_renders_the_page_and_runs_its_script(pruned, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium binary on PATH (Debian: apt-get install chromium)")
    path = tmp_path / "report.html"
    pruned.html(path)
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--disable-extensions", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=60).stdout
    assert dom, "the browser printed no DOM"
    p = parse(dom)
    html_attrs = next(a for t, a in p.tags if t == "html")
    assert html_attrs.get("data-hwsim-ready") == "1", "the page's script did not finish"
    # the script built the op menu: one option per op timeline, the first one shown
    selects = [a for t, a in p.tags if t == "select"]
    assert [a.get("class") for a in selects] == ["op-select"]
    options = [a for t, a in p.tags if t == "option"]
    timelines = [a for t, a in p.tags if t == "div" and a.get("class") == "op-timeline"]
    assert len(options) == len(timelines) >= 2
    assert timelines[0].get("style", "") == "" and all(
        "display: none" in a.get("style", "") for a in timelines[1:])
    # and made the tables of figures sortable (each header of a table of class sortable)
    source = pruned.to_html()
    expected = sum(len(re.findall(r"<th[ >]", t)) for t in re.findall(
        r'<table class="sortable[^"]*">(.*?)</table>', source, re.S))
    sortable = [a for t, a in p.tags if t == "th" and "sortable" in a.get("class", "").split()]
    assert len(sortable) == expected > 20
    assert all(a.get("title") == "sort by this column" for a in sortable)
    # the figures and numbers are there as rendered
    assert dom.count("<svg") == pruned.to_html().count("<svg") >= 8
    assert si(pruned.totals["latency_s"], "s") in " ".join(p.text)


def test_the_report_json_is_unchanged_by_the_page(pruned):
    before = json.dumps(pruned.to_dict(), sort_keys=True)
    pruned.to_html()
    pruned._repr_html_()
    assert json.dumps(pruned.to_dict(), sort_keys=True) == before


def test_a_hand_written_workload_file_gives_a_page(tmp_path):
    wl = dump_yaml(tmp_path / "k.yaml", {"name": "k", "ops": [
        {"kind": "matmul", "m": 64, "n": 64, "k": 64, "dtype": "fp16"}]})
    page = hwsim.simulate(wl, "roofline").to_html()
    assert "k on roofline-v100 (roofline)" in page
