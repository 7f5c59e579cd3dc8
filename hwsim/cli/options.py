"""What every subcommand shares: ``--debug``, ``--progress``, and its output files.

An output path is checked before any work starts (a simulation may take minutes,
a missing folder should not cost them): its folder must exist, the path must not
be a folder, and a figure's suffix must be a format matplotlib writes. A write
that still fails (a full disk, no permission) is one line too. Both are
:class:`~hwsim.errors.InputError` naming the option, so ``hwsim`` prints them as
``hwsim: error: --csv: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import Iterator

from ..errors import InputError


def add_common(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--debug`` and ``--progress/--no-progress``, on ``hwsim`` itself (``top``)
    and on each subcommand (where an unset one leaves the top level's choice)."""
    default = None if top else argparse.SUPPRESS
    p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="show the traceback of an error instead of one line")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=default,
                   help="progress bars on stderr for long work (default: when stderr is a "
                        "terminal)")


def check_output(path: str | None, option: str, *, figure: bool = False,
                 stdout_ok: bool = False) -> None:
    """Refuse, before any work, an output ``path`` that cannot be written: its folder
    missing or not a folder, the path itself a folder, or (``figure``) a suffix
    matplotlib cannot write. ``-`` is stdout where ``stdout_ok``."""
    if path is None or (stdout_ok and path == "-"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder; give a file name", source=option)
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise InputError(f"cannot write {path}: the folder {folder} {what}", source=option)
    if figure:
        formats = figure_formats()
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        if ext not in formats:
            raise InputError(f"cannot write a figure as {path}: expected a file name ending "
                             f"in one of {', '.join('.' + f for f in formats)}", source=option)


def figure_formats() -> list[str]:
    """The file suffixes matplotlib saves figures as (png, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase  # noqa: PLC0415

    return sorted(FigureCanvasBase.get_supported_filetypes())


@contextmanager
def writing(path: str, option: str) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into one line naming ``option``."""
    try:
        yield
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}", source=option) from None


def write_text(path: str, text: str, option: str) -> None:
    """``text`` to ``path``, or to stdout for ``-``."""
    if path == "-":
        sys.stdout.write(text)
        return
    with writing(path, option), open(path, "w", encoding="utf-8") as f:
        f.write(text)


def version() -> str:
    """hwsim's version as installed (the distribution's metadata), else the package's
    own ``__version__`` (a source checkout that was never installed)."""
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("hwsim")
    except metadata.PackageNotFoundError:
        from .. import __version__  # noqa: PLC0415

        return __version__


class VersionAction(argparse.Action):
    """``--version``: print ``hwsim X.Y.Z`` and exit (the metadata read only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print hwsim's version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"hwsim {version()}")
        parser.exit()
