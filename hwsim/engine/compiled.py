"""Loading the optional compiled cores (the event loop's ``hwsim.engine._cevents``,
Ascend's analytical walk's ``hwsim.accelerators.ascend._cwalk``).

Each is a C twin of a Python loop that stays the reference: the same numbers to the
last bit, built by an install where a C compiler is found (setup.py: optional
extensions), so that an install without one, or a source checkout not built, runs the
Python. A build from before a change of its call (its ``CALL_VERSION`` is not the one
its caller speaks) is not used either; and ``HWSIM_PURE_PYTHON=1`` in the environment
switches every one off (the module still loads, for the tests that compare the two)."""

from __future__ import annotations

import importlib
import os

# the environment's switch, read once: every compiled core off (the Python loops run)
PURE_PYTHON = os.environ.get("HWSIM_PURE_PYTHON", "") not in ("", "0")


def optional(name: str, call_version: int):
    """The compiled module ``name`` if it is built and speaks ``call_version``, else
    None (whatever :data:`PURE_PYTHON` says: its caller's ``COMPILED`` adds that)."""
    try:
        mod = importlib.import_module(name)
    except ImportError:  # not built (a source checkout, an install without a C compiler)
        return None
    return mod if getattr(mod, "CALL_VERSION", None) == call_version else None
