"""Shipped workloads and sweeps, named without a path.

hwsim ships its example workloads (the repository's ``workloads/``) and sweep
files (``sweeps/``) inside the package: a wheel installs them as the
package-data folders ``hwsim/_workloads`` and ``hwsim/_sweeps`` (see
``setup.py``). Someone who installed hwsim has no repository to point at, so a
workload or sweep argument that is not an existing file is looked up among the
shipped ones by name::

    hwsim simulate bert-base              # also bert-base.yaml, workloads/bert-base.yaml
    hwsim sweep bert-seq-bw               # also sweeps/bert-seq-bw.yaml
    hwsim workloads                       # what is shipped, one line each

The rule, in :func:`find`:

1. a path that exists is read as given: a user's own ``bert-base.yaml`` in the
   working directory wins over the shipped one;
2. otherwise ``NAME``, ``NAME.yaml`` (or ``.yml``) and ``workloads/NAME.yaml``
   (``sweeps/NAME.yaml`` for a sweep) name the shipped file ``NAME.yaml``. The
   folder form is how the repository's sweep files, validation cases and docs
   have always named shipped workloads, so they resolve from any working
   directory and from an installed copy alike;
3. anything else is an error that names the argument, says nothing by that
   name is shipped, and suggests the closest shipped name.

Where the shipped files are: in an installed copy, the package-data folder
``hwsim/_workloads``; in a source checkout (``pip install -e .`` or
``PYTHONPATH``), the repository's own ``workloads/`` beside ``hwsim/``, recognised
by the ``pyproject.toml`` next to it (a bare folder named ``workloads`` beside an
installed hwsim in site-packages, owned by some other distribution, is never
taken for ours).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError

KINDS = {"workload": "workloads", "sweep": "sweeps"}  # kind -> folder name in the repository
SUFFIXES = (".yaml", ".yml")


def folder(kind: str = "workload") -> Path | None:
    """The folder of the shipped workloads (``kind="workload"``) or sweeps (``"sweep"``):
    the installed package-data copy, else a source checkout's own folder; None when
    neither exists."""
    name = KINDS[kind]
    here = Path(__file__).resolve()
    packaged = here.parents[1] / f"_{name}"  # hwsim/_workloads in a wheel
    if packaged.is_dir():
        return packaged
    root = here.parents[2]
    checkout = root / name
    if (root / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return None


def names(kind: str = "workload") -> list[str]:
    """The shipped names (file stems), sorted."""
    d = folder(kind)
    if d is None:
        return []
    return sorted(p.stem for p in d.iterdir() if p.suffix in SUFFIXES and p.is_file())


def shipped_name(ref: str, kind: str = "workload") -> str | None:
    """The shipped name ``ref`` stands for under rule 2 of the module's docstring
    (``bert-base``, ``bert-base.yaml``, ``workloads/bert-base.yaml``), or None when
    ``ref`` has any other form (another folder, an absolute path)."""
    ref = ref.strip()
    head, _, tail = ref.replace("\\", "/").rpartition("/")
    if head not in ("", KINDS[kind], f"./{KINDS[kind]}"):
        return None
    stem, ext = os.path.splitext(tail)
    if ext in SUFFIXES:
        tail = stem
    return tail or None


def path(name: str, kind: str = "workload") -> Path | None:
    """The shipped file of ``name`` (any form :func:`shipped_name` takes), or None."""
    stem = shipped_name(name, kind)
    d = folder(kind)
    if stem is None or d is None:
        return None
    for suffix in SUFFIXES:
        p = d / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def find(ref: str | os.PathLike, kind: str = "workload") -> str:
    """``ref`` as a path to read: itself when it exists, else the shipped file it names.

    Raises :class:`~hwsim.errors.InputError` (exit status 2 on the command line)
    naming ``ref`` when it is neither, with the closest shipped name if one is close.
    """
    ref = os.fspath(ref)
    if os.path.exists(ref):
        return ref
    found = path(ref, kind)
    if found is not None:
        return str(found)
    from ..spec import suggest  # noqa: PLC0415

    stem = shipped_name(ref, kind)
    if stem is None:
        raise InputError(f"{kind} file not found", source=ref)
    listing = "hwsim workloads" if kind == "workload" else "hwsim workloads --sweeps"
    raise InputError(f"{kind} file not found, and no shipped {kind} is named {stem!r}"
                     f"{suggest(stem, names(kind))} ({listing} lists them)", source=ref)


def description(p: Path | str, data: Any = None) -> str:
    """One line about a shipped file: its ``description:`` field, else the first
    sentence of its opening comment (the comment block before the first key)."""
    if isinstance(data, dict) and isinstance(data.get("description"), str) \
            and data["description"].strip():
        text = data["description"]
    else:
        lines = []
        with open(p, encoding="utf-8") as f:
            for line in f:
                s = line.strip()
                if not s.startswith("#"):
                    break
                s = s.lstrip("#")
                if s.startswith("   ") or s.lstrip().startswith("- ") or not s.strip():
                    break  # an indented example command, a list, a blank comment line
                lines.append(s.strip())
        text = " ".join(lines)
    return first_sentence(" ".join(text.split()))


def first_sentence(text: str) -> str:
    """``text`` up to the end of its first sentence: a full stop at the end, or before
    a space and a capital letter (so "et al. 2024", "e.g. the" and "128 .. 512" go on)."""
    for i, ch in enumerate(text):
        if ch != "." or (i and text[i - 1] == "."):
            continue
        rest = text[i + 1:]
        if not rest.strip() or (rest.startswith(" ") and rest.lstrip()[:1].isupper()):
            return text[:i + 1]
    return text


def catalogue(kind: str = "workload") -> list[dict[str, Any]]:
    """Every shipped workload (or sweep) as a row: ``name``, ``model`` (a zoo name,
    ``trace (FORMAT)`` or ``ops: N``), ``phase``, ``target`` (when the file names one;
    for a sweep, also a list of targets swept), ``description`` and ``path``.

    Read from the files' YAML without checking them (a listing must not fail on
    one workload; ``hwsim simulate NAME`` checks it)."""
    from .. import yamlfile  # noqa: PLC0415

    rows = []
    for name in names(kind):
        p = path(name, kind)
        try:
            data = yamlfile.read(str(p), f"{kind} file")
        except InputError:
            data = None
        data = data if isinstance(data, dict) else {}
        target = data.get("target") if isinstance(data.get("target"), str) else ""
        row = {"name": name}
        if kind == "sweep":
            wl = data.get("workload")
            axes = data.get("axes") if isinstance(data.get("axes"), dict) else {}
            if isinstance(axes.get("target"), list):
                target = ",".join(str(t) for t in axes["target"])
            row.update(workload=(shipped_name(wl) or wl) if isinstance(wl, str) else "inline",
                       target=target, axes=[str(a) for a in axes])
        else:
            row.update(model=_model(data), phase=str(data.get("phase", "prefill")),
                       target=target)
        rows.append({**row, "description": description(p, data), "path": str(p)})
    return rows


def _model(data: dict) -> str:
    if isinstance(data.get("model"), str) and data["model"]:
        return data["model"]
    if isinstance(data.get("trace"), str) and data["trace"]:
        return f"trace ({data.get('trace_format') or 'hwsim'})"
    if isinstance(data.get("ops"), list):
        return f"ops: {len(data['ops'])}"
    return "-"
