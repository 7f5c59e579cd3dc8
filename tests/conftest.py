"""Shared helpers of the core tests: workload files, a tiny layered model graph,
a synthetic model zoo, and the roofline preset numbers the tests compute with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hwsim.ir import Graph, save

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "traces"

# roofline-v100 preset (hwsim/accelerators/roofline/presets/roofline-v100.yaml);
# tests/test_roofline.py::test_v100_preset_numbers holds the preset to these.
V100 = {
    "fp16": 125e12,
    "fp32": 15.7e12,
    "int32": 7.8e12,
    "bw": 900e9,
    "overhead": 2.9e-6,
    "gap": 0.5e-6,  # kernel_gap_s: what a launch queued behind the op before still costs
    "pj_fp16": 0.75,
    "pj_fp32": 2.3,
    "pj_int32": 0.1,
    "pj_dram": 31.2,
}

# The ops of DESIGN.md's kernel-study example, plus an embedding lookup.
KERNEL_OPS = [
    {"kind": "matmul", "m": 16, "n": 16, "k": 16, "dtype": "fp32"},
    {"kind": "attention", "heads": 1, "kv_heads": 1, "head_dim": 128, "q_len": 4096,
     "kv_len": 4096, "causal": False, "dtype": "fp16"},
    {"kind": "topk", "n": 1024, "k": 128},
    {"kind": "softmax", "rows": 4096, "cols": 4096, "dtype": "fp16"},
    {"kind": "elementwise", "fn": "exp", "elements": 1048576, "dtype": "fp16"},
    {"kind": "embedding", "tokens": 128, "dim": 4096},
]


def dump_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def write_workload(tmp_path):
    """``write_workload(dict, name="wl.yaml") -> Path`` of a workload YAML in tmp_path."""

    def write(data, name: str = "wl.yaml") -> Path:
        return dump_yaml(tmp_path / name, data)

    return write


@pytest.fixture
def kernel_workload(write_workload):
    """The DESIGN.md kernel-study workload as a file."""
    return write_workload({"name": "kernels", "ops": KERNEL_OPS}, "kernels.yaml")


# ---------------------------------------------------------------- a tiny model
TINY = {"hidden": 64, "heads": 4, "head_dim": 16, "vocab": 100, "layers": 2}


def tiny_graph(batch: int = 1, seq_len: int = 8, layers: int = TINY["layers"],
               name: str = "tiny") -> Graph:
    """A small decoder-only graph whose sizes depend on (batch, seq_len) the way a
    traced model's do (products like ``batch*seq_len`` and plain ``seq_len``)."""
    h, nh, hd, v = TINY["hidden"], TINY["heads"], TINY["head_dim"], TINY["vocab"]
    b, s, rows = batch, seq_len, batch * seq_len
    g = Graph({"name": name, "model": "tiny-llm", "phase": "prefill", "batch": b,
               "seq_len": s, "kv_len": 0, "dtype": "fp16",
               "segments": {"text": [0, 2], "rest": [2, s]}})
    ids = g.add_tensor([b, s], "int64", "input")
    table = g.add_tensor([v, h], "fp16", "param")
    x = g.add_tensor([b, s, h], "fp16")
    g.add_op("embedding", [table, ids], [x], {"tokens": rows, "dim": h},
             module="model.embed_tokens")
    for layer in range(layers):
        p = f"model.layers.{layer}"
        wn = g.add_tensor([h], "fp16", "param")
        xn = g.add_tensor([b, s, h], "fp16")
        g.add_op("rmsnorm", [x, wn], [xn], {"rows": rows, "cols": h}, layer=layer,
                 module=f"{p}.input_layernorm")
        qkv = []
        for proj in ("q", "k", "v"):
            w = g.add_tensor([h, h], "fp16", "param")
            out = g.add_tensor([b, s, h], "fp16")
            g.add_op("matmul", [xn, w], [out], {"batch": 1, "m": rows, "n": h, "k": h},
                     layer=layer, module=f"{p}.self_attn.{proj}_proj")
            qkv.append(out)
        q4 = g.add_tensor([b, nh, s, hd], "fp16")
        g.add_op("view", [qkv[0]], [q4], {}, layer=layer, module=f"{p}.self_attn")
        qr = g.add_tensor([b, nh, s, hd], "fp16")
        g.add_op("rope", [q4], [qr], {"elements": rows * h}, layer=layer,
                 module=f"{p}.self_attn.rotary_emb")
        cache = g.add_tensor([b, s, h], "fp16", "kv_cache")
        g.add_op("kv_write", [qkv[1]], [cache], {"elements": rows * h}, layer=layer,
                 module=f"{p}.self_attn.k_cache")
        att = g.add_tensor([b, nh, s, hd], "fp16")
        g.add_op("attention", [qr, qkv[1], qkv[2]], [att],
                 {"batch": b, "heads": nh, "kv_heads": nh, "head_dim": hd, "q_len": s,
                  "kv_len": s, "causal": True}, layer=layer, module=f"{p}.self_attn.attn")
        wo = g.add_tensor([h, h], "fp16", "param")
        o = g.add_tensor([b, s, h], "fp16")
        g.add_op("matmul", [att, wo], [o], {"batch": 1, "m": rows, "n": h, "k": h},
                 layer=layer, module=f"{p}.self_attn.o_proj")
        x2 = g.add_tensor([b, s, h], "fp16")
        g.add_op("elementwise", [x, o], [x2], {"fn": "add", "elements": rows * h},
                 layer=layer, module=f"{p}.residual")
        x = x2
    wh = g.add_tensor([h, v], "fp16", "param")
    logits = g.add_tensor([b, s, v], "fp16")
    g.add_op("matmul", [x, wh], [logits], {"batch": 1, "m": rows, "n": v, "k": h},
             module="lm_head")
    vals = g.add_tensor([rows, 5], "fp16")
    idx = g.add_tensor([rows, 5], "int64")
    g.add_op("topk", [logits], [vals, idx], {"rows": rows, "n": v, "k": 5},
             module="sampler")
    return g


GRID = [{"batch": b, "seq_len": s, "kv_len": 0} for b in (1, 2) for s in (8, 16)]


def tiny_template() -> Graph:
    from hwsim.ir import fit_template

    return fit_template([tiny_graph(p["batch"], p["seq_len"]) for p in GRID], GRID)


@pytest.fixture
def tiny_trace(tmp_path):
    """A concrete tiny graph at batch=1, seq_len=8, saved as a trace file."""
    path = tmp_path / "tiny.json.gz"
    save(tiny_graph(1, 8), path)
    return path


@pytest.fixture
def synthetic_zoo(tmp_path, monkeypatch):
    """A model zoo holding one model, ``tiny-llm`` (prefill template of tiny_graph),
    found through $HWSIM_TRACES like a shipped template. Returns its folder."""
    from hwsim import zoo

    folder = tmp_path / "zoo"
    save(tiny_template(), folder / "tiny-llm.prefill.json.gz")
    monkeypatch.setenv("HWSIM_TRACES", str(folder))
    zoo._shipped.cache_clear()
    zoo.template.cache_clear()
    yield folder
    monkeypatch.delenv("HWSIM_TRACES")
    zoo._shipped.cache_clear()
    zoo.template.cache_clear()


def shipped_templates(phase: str = "prefill") -> list[Path]:
    return sorted(TRACES.glob(f"*.{phase}.json.gz"))


# ---------------------------------------------------------------- subprocesses
def run_hwsim(*args: str, env: dict | None = None, cwd: Path | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m hwsim ARGS`` from the repository root (importable without install)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.pop("HWSIM_TRACES", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "hwsim", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=full_env, timeout=timeout)


# ---------------------------------------------------------------- the wheel
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE")
WHEEL_FOLDERS = ("hwsim", "traces", "workloads", "sweeps")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per session, offline (no build isolation: the
    build backend is this environment's setuptools), from a copy of the files that
    go into it, so that the checkout gets no build/ or egg-info."""
    import shutil  # noqa: PLC0415

    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in WHEEL_SOURCES:
        shutil.copy(ROOT / name, src / name)
    for folder in WHEEL_FOLDERS:
        shutil.copytree(ROOT / folder, src / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("hwsim-*.whl")
    return wheel


# ---------------------------------------------------------------- slow tests
def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long property runs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def model_cache(tmp_path, monkeypatch):
    """An empty hwsim trace cache and Hugging Face hub cache, and fresh zoo caches; the
    hwsim cache folder (where traced templates land)."""
    from hwsim import zoo

    monkeypatch.setenv("HWSIM_CACHE_DIR", str(tmp_path / "hwsim-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    zoo.template.cache_clear()
    yield tmp_path / "hwsim-cache"
    zoo.template.cache_clear()
