"""A newcomer's first hour (issue 17, "Done when"): install the wheel into a fresh
virtual environment outside the repository and run every shell command of the
README and of docs/ by copy and paste, from an empty folder.

The wheel is built once (``built_wheel`` in conftest) and installed with
``--no-deps`` into a venv made with ``--system-site-packages`` (no network here: the
dependencies come from this environment's site-packages; hwsim itself is imported
from the venv, which the test checks). ``PYTHONPATH`` and hwsim's data variables
are removed from the commands' environment, so nothing of the checkout is
visible to them.

The commands are every line of a fenced code block (plain, ``bash``, ``sh``,
``shell`` or ``console``) that starts with ``hwsim `` or ``$ hwsim `` (backslash
continuations joined), run in document order in one folder per document, so a
``hwsim plot`` reads what the ``hwsim sweep`` before it wrote. Each must exit 0,
except:

- :data:`NOT_RUN`: a placeholder for the reader's own module or measurements, or
  a service that must already run; skipped, each with its reason;
- :data:`EXPECTED`: a command documented to stop without data hwsim does not
  ship; it must exit 2 with a one-line message that names the missing file and
  where to get it, never a traceback;
- :data:`INPUTS`: files a command reads that the reader provides (a prompt, a
  CSV of arrivals, a board's pointer-chase measurements), written into the folder
  first in the format the docs give; and every Python block of the docs whose
  first line is a file name (``# mypkg/models.py``), written there as the docs
  ask the reader to;
- commands that need torch (``hwsim trace``) run when torch is importable and are
  skipped, saying so, when it is not;
- :data:`SHORTER`: the quick run (the default) makes the long commands shorter by
  a stated substitution and leaves the torch commands (each imports torch: ~10 s)
  to the full run, which is marked slow (``--runslow``) and runs every command as
  written.

The Python blocks that start with ``import hwsim`` run too, as scripts of the
venv's interpreter in the same folder, after the document's commands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "docs").glob("*/*.md"))]
SHELL_BLOCKS = ("", "bash", "sh", "shell", "console")

#: command prefix -> why it is not run here
NOT_RUN = {
    "hwsim sweep bert-seq-bw --scheduler tcp://": "needs a dask scheduler already running at "
                                                  "that address",
}
#: command prefix -> (exit status, text stderr must hold)
EXPECTED = {
    "hwsim simulate spatten-gpt2-small-trace-pruned":
        (2, "summary-gpt2-small-wikitext2-per8.csv in github.com/mit-han-lab/spatten"),
}
#: files the reader provides, written into the folder before the commands run
INPUTS = {
    "prompt.txt": "The quick brown fox jumps over the lazy dog while the cat watches the "
                  "birds in the garden and the sun sets behind the hills.\n",
    # docs/generation.md: a CSV of arrival_s, prompt_tokens, output_tokens
    "arrivals.csv": "arrival_s,prompt_tokens,output_tokens\n0.0,512,16\n0.5,1024,8\n"
                    "1.0,256,32\n",
}
# A board's single-warp pointer chase (docs/calibration.md: the columns of gpu-latency's
# file), invented for the test: L1, L2 and DRAM plateaus near a V100's.
_CHASE = [(8, 28.0), (16, 28.1), (32, 28.0), (64, 28.2), (512, 212.0), (1024, 213.0),
          (2048, 212.5), (4096, 214.0), (65536, 440.0), (131072, 445.0), (262144, 452.0)]
_CHASE_CSV = ("benchmark,iters,sm_clock_MHz,working_set_kB,total_time_ms,latency_cycles_mean,"
              "latency_cycles_median,latency_cycles_p5,latency_cycles_p95,latency_ns_mean,"
              "source\n" + "".join(f"pointer chase,1000000,1380,{kb},0,{c},{c},{c},{c},"
                                   f"{c / 1.38:.2f},my board\n" for kb, c in _CHASE))
for _name in ("mine.csv", "my_pointer_chase.csv", "my_chase.csv"):
    INPUTS[_name] = _CHASE_CSV
NEEDS_TORCH = ("hwsim trace ",)
#: the quick run's substitutions: (text in a command, its replacement, why)
SHORTER = [
    ("hwsim validate --sensitivity", "hwsim validate --sensitivity --target volta",
     "every target's reruns take ~20 s; volta's cases run the same machinery in ~2 s"),
    ("--requests 200", "--requests 20", "a tenth of the requests through the same scheduler"),
]


def doc_commands(path: Path) -> list[str]:
    """The hwsim command lines of ``path``'s shell code blocks, in order."""
    out: list[str] = []
    lang = None  # None: outside a block
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"^\s*```\s*([\w-]*)", raw)
        if fence:
            lang = None if lang is not None else fence.group(1).lower()
            pending = ""
            continue
        if lang is None or lang not in SHELL_BLOCKS:
            continue
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        elif line.startswith("$ "):
            line = line[2:].lstrip()
        elif not line.startswith("hwsim "):
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.startswith("hwsim "):
            out.append(line)
    return out


def doc_python(path: Path) -> list[str]:
    """The Python blocks of ``path``: ``(text)`` of each ``python`` block, in order."""
    text = path.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S)]


def doc_files() -> dict[str, str]:
    """Files the docs ask the reader to write: Python blocks whose first line names one
    (``# mypkg/models.py``)."""
    out = {}
    for doc in DOCS:
        for block in doc_python(doc):
            m = re.match(r"# ([\w/]+\.py)\n", block)
            if m:
                out[m.group(1)] = block
    return out


def test_the_extractor_reads_blocks_prompts_and_continuations(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("text hwsim simulate not-a-command\n"
                   "```bash\nhwsim simulate a --set x=1 \\\n      --json -   # note\n"
                   "pip install .\n```\n"
                   "```python\nhwsim.simulate('b')\n```\n"
                   "```\n$ hwsim models\nmodel  layers\n```\n"
                   "```yaml\nhwsim targets\n```\n", encoding="utf-8")
    assert doc_commands(doc) == ["hwsim simulate a --set x=1 --json -   # note",
                                 "hwsim models"]


def test_the_docs_have_commands_to_run():
    """The extractor finds the README's commands (an empty list would pass vacuously)."""
    readme = doc_commands(ROOT / "README.md")
    assert len(readme) >= 15
    assert any(c.startswith("hwsim simulate bert-base ") for c in readme)
    assert any(c.startswith("hwsim sweep ") for c in readme)
    assert "mypkg/models.py" in doc_files()  # what hwsim trace mypkg.models:factory imports


@pytest.fixture(scope="module")
def venv(built_wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed; returns the environment to run in."""
    where = tmp_path_factory.mktemp("newcomer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(where)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HWSIM_TRACES", "HWSIM_CALIBRATION_DIR")}
    env["PATH"] = str(where / "bin") + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env["COLUMNS"] = "120"
    py = str(where / "bin" / "python")
    res = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--force-reinstall", "-q", str(built_wheel)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    probe = subprocess.run([py, "-c", "import hwsim; print(hwsim.__file__)"],
                           capture_output=True, text=True, env=env, timeout=60,
                           cwd=tmp_path_factory.mktemp("probe"))
    assert probe.stdout.strip().startswith(str(where)), probe  # the wheel's, not the checkout's
    assert shutil.which("hwsim", path=env["PATH"]) == str(where / "bin" / "hwsim")
    torch = subprocess.run([py, "-c", "import torch, transformers"], env=env,
                           capture_output=True, timeout=120).returncode == 0
    return {"env": env, "python": py, "torch": torch}


def _run(cmd: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_installed_hwsim_lists_every_shipped_workload_and_sweep(venv, tmp_path):
    """``hwsim workloads`` of the installed wheel: every file of workloads/ and
    sweeps/, read from the package data, not from the checkout."""
    res = _run("hwsim workloads --json", venv["env"], tmp_path)
    assert res.returncode == 0, res.stderr
    import json  # noqa: PLC0415

    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["name"] for r in rows} == {p.stem for p in (ROOT / "workloads").glob("*.yaml")}
    assert all("/site-packages/hwsim/_workloads/" in r["path"] for r in rows)
    res = _run("hwsim workloads --sweeps --json", venv["env"], tmp_path)
    assert res.returncode == 0, res.stderr
    sweeps = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["name"] for r in sweeps} == {p.stem for p in (ROOT / "sweeps").glob("*.yaml")}


@pytest.mark.parametrize("mode", ["quick", pytest.param("full", marks=pytest.mark.slow)])
@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_documented_command_runs_from_an_installed_wheel(doc, mode, venv, tmp_path):
    commands = doc_commands(doc)
    scripts = [b for b in doc_python(doc) if b.startswith("import hwsim")]
    if not commands and not scripts:
        pytest.skip(f"{doc.name} has no hwsim commands")
    for name, text in {**INPUTS, **doc_files()}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    skipped = []
    for cmd in commands:
        reason = next((why for prefix, why in NOT_RUN.items() if cmd.startswith(prefix)), None)
        if reason is None and cmd.startswith(NEEDS_TORCH):
            if not venv["torch"]:
                reason = "needs torch and transformers (the trace extra)"
            elif mode == "quick":
                reason = "imports torch (~10 s): run in the full (slow) run"
        if reason:
            skipped.append(f"{cmd}: {reason}")
            continue
        if mode == "quick":
            for text, shorter, _why in SHORTER:
                cmd = cmd.replace(text, shorter)
        res = _run(cmd, venv["env"], tmp_path)
        assert "Traceback" not in res.stderr, f"{cmd}\n{res.stderr[-3000:]}"
        expected = next((e for prefix, e in EXPECTED.items() if cmd.startswith(prefix)), None)
        if expected:
            status, text = expected
            assert res.returncode == status, f"{cmd}\n{res.stderr[-3000:]}"
            assert text in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
            continue
        assert res.returncode == 0, f"{doc.name}: {cmd}\nexit {res.returncode}\n" \
                                    f"{res.stderr[-3000:]}\n{res.stdout[-1500:]}"
    for i, script in enumerate(scripts):
        (tmp_path / f"snippet{i}.py").write_text(script, encoding="utf-8")
        res = subprocess.run([venv["python"], f"snippet{i}.py"], capture_output=True,
                             text=True, env=venv["env"], cwd=tmp_path, timeout=600)
        assert res.returncode == 0, f"{doc.name}: python block\n{script}\n{res.stderr[-3000:]}"
    for line in skipped:
        print(f"not run: {line}")


def test_the_wheel_holds_hwsim_alone_with_its_examples_and_license(built_wheel):
    """One top-level package (hwsim: no generic names such as ``accelerators`` that
    another distribution could own), the shipped workloads and sweeps as its package
    data, and the Apache-2.0 LICENSE file in its metadata."""
    import zipfile  # noqa: PLC0415

    z = zipfile.ZipFile(built_wheel)
    names = set(z.namelist())
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"hwsim", "hwsim-0.1.0.dist-info"}, tops
    for p in (ROOT / "workloads").glob("*.yaml"):
        assert f"hwsim/_workloads/{p.name}" in names
    for p in (ROOT / "sweeps").glob("*.yaml"):
        assert f"hwsim/_sweeps/{p.name}" in names
    assert z.read("hwsim-0.1.0.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    license_text = " ".join((ROOT / "LICENSE").read_text(encoding="utf-8").split())
    assert license_text.startswith("Apache License Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in license_text
    meta = z.read("hwsim-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in meta and "License-File: LICENSE" in meta


def test_ci_installs_the_way_the_readme_says():
    """.ci/run installs torch's CPU build and the extras with the README's commands
    (the plain pin where a local CPU wheel exists, the CPU index on other Linux
    machines) and runs the README's test command; sweeps' pyarrow is in the README."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (pin,) = [d for d in project["optional-dependencies"]["trace"] if d.startswith("torch")]
    assert f"pip install {pin} --index-url https://download.pytorch.org/whl/cpu" in readme
    assert f"`pip install {pin}`" in readme
    assert f"\npython -m pip install {pin}\n" in ci
    assert 'pip install ".[trace,dist,dev]" && python -m pytest -q' in readme
    assert '\npython -m pip install ".[trace,dist,dev]"\n' in ci and "\npython -m pytest -q\n" in ci
    assert any(d.startswith("pyarrow") for d in project["optional-dependencies"]["dist"])
    assert "sweeps need pyarrow" in readme and 'pip install "hwsim[dist]"' in readme
