"""Every notebook in notebooks/ executes, on a small grid, and writes its figures.

The test replaces the notebook's ``parameters`` cell (papermill's convention)
with ``SMALL = True``, the repository root, a temporary output folder and one
worker, runs it in a fresh Jupyter kernel, and checks that no cell failed and
that the figures it promises (``metadata.hwsim.figures``) were written as PDF.
The kernel draws on Jupyter's inline backend, as a reader's does, so a figure
shown twice (returned from a cell and also drawn by the backend) is caught. A
notebook whose targets (``metadata.hwsim.targets``) are not registered is
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
pytest.importorskip("matplotlib_inline")

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
    # the inline backend, as in Jupyter: what a reader sees is what is checked
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    shown = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert shown, "the figures are shown in the notebook"
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        # each figure a cell makes goes through the notebook's save(): shown once each
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        made = max(1, cell.source.count("save("))
        assert len(images) <= made, f"a figure shows twice:\n{cell.source[:300]}"
    figures = sorted(tmp_path.glob("*.pdf"))
    assert len(figures) >= meta.get("figures", 1), [f.name for f in figures]
    for fig in figures:
        data = fig.read_bytes()
        assert data.startswith(b"%PDF") and len(data) > 2000, fig.name
