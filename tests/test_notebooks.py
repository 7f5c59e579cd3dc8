"""Every notebook in notebooks/ executes, on a small grid, and writes its figures.

The test replaces the notebook's ``parameters`` cell (papermill's convention)
with ``SMALL = True``, the repository root, a temporary output folder and one
worker, runs it in a fresh Jupyter kernel, and checks that no cell failed and
that the figures it promises (``metadata.hwsim.figures``) were written as PDF.
A notebook whose targets (``metadata.hwsim.targets``) are not registered is
skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import ROOT

import hwsim

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_a_small_grid(path: Path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("hwsim", {})
    missing = [t for t in meta.get("targets", []) if t not in hwsim.registry()]
    if missing:
        pytest.skip(f"{path.name} needs target(s) not registered: {', '.join(missing)}")
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "a notebook has exactly one cell tagged 'parameters'"
    params[0].source = (f"SMALL = True\nROOT = {str(ROOT)!r}\nOUT = {str(tmp_path)!r}\n"
                        f"WORKERS = 1\n")
    # the kernel imports this checkout's hwsim, whether or not it is installed
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    figures = sorted(tmp_path.glob("*.pdf"))
    assert len(figures) >= meta.get("figures", 1), [f.name for f in figures]
    for fig in figures:
        data = fig.read_bytes()
        assert data.startswith(b"%PDF") and len(data) > 2000, fig.name
