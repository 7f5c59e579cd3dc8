"""Tracing PyTorch models into hwsim operation graphs (the only place torch is used).

A model is run once on *fake* tensors (shapes, no storage) while a recording
dispatch mode writes down every aten call with the module it ran in; the record
is fused (RMSNorm, rotary embedding, attention) and lowered to the canonical op
kinds of :mod:`hwsim.ir`. A 7B model traces in about a second and costs no
memory for its weights.

::

    from hwsim.trace import trace, trace_template, cached_trace
    g = trace("llama-2-7b", seq_len=2048, phase="prefill")
    g = trace("llama-3.1-8b", seq_len=8192)           # built from its shipped config.json
    g = trace("path/to/config.json", seq_len=512)     # any transformers config (or its folder,
    g = trace("Qwen/Qwen2.5-7B", seq_len=512)          # or a Hugging Face id in the local cache)
    g = trace("mypkg.models:factory", seq_len=128)     # factory -> (model, example_inputs)
    t = trace_template("gpt2", "decode")             # sizes as expressions of batch/seq_len/kv_len

Importing this package does not import torch: :data:`ZOO_NAMES`,
:mod:`hwsim.trace.zoo_names`, :mod:`hwsim.trace.configs`,
:mod:`hwsim.trace.hfconfig` and :mod:`hwsim.trace.hub` are plain data and
Python; the functions below import torch (and ``transformers``) on first use.

Modules: :mod:`~hwsim.trace.zoo_names` (names, phases, dims),
:mod:`~hwsim.trace.configs` (published config.json files shipped as data),
:mod:`~hwsim.trace.hfconfig` (what a config says, without torch),
:mod:`~hwsim.trace.hub` (config paths, Hugging Face ids, the template cache's
names), :mod:`~hwsim.trace.zoo` (building models), :mod:`~hwsim.trace.factory`
(user models), :mod:`~hwsim.trace.recorder` (the recording modes and hooks),
:mod:`~hwsim.trace.masks` (reading attention masks without values),
:mod:`~hwsim.trace.moe` (a mixture of experts' experts module as one op),
:mod:`~hwsim.trace.raw` (the raw record), :mod:`~hwsim.trace.fuse` (fusions),
:mod:`~hwsim.trace.aten_map` (aten -> kinds), :mod:`~hwsim.trace.lower` (raw
record -> Graph), :mod:`~hwsim.trace.stacks` (layer numbering),
:mod:`~hwsim.trace.api` (``trace``), :mod:`~hwsim.trace.template` (templates),
:mod:`~hwsim.trace.cache` (on-disk cache of traces and of config models'
templates), :mod:`~hwsim.trace.ship` (shipped templates).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .zoo_names import ZOO, ZOO_NAMES

__all__ = ["ZOO", "ZOO_NAMES", "trace", "trace_template", "cached_trace", "needs_torch"]

# what tracing imports on first use; without them tracing stops with one line
TRACE_PACKAGES = ("torch", "transformers")


@contextmanager
def needs_torch(where: str = "hwsim trace") -> Iterator[None]:
    """Run a block that traces: torch missing (checked first), or torch or
    transformers failing to import inside the block, is one
    :class:`~hwsim.errors.InputError` saying how to install them, not a traceback
    from deep inside the tracer."""
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError as e:
        raise _missing("torch", e, where) from None
    try:
        yield
    except ImportError as e:
        package = (e.name or "").split(".")[0]
        if package not in TRACE_PACKAGES:
            raise
        raise _missing(package, e, where) from None


def _missing(package: str, e: ImportError, where: str):
    from ..errors import InputError  # noqa: PLC0415

    return InputError(f"tracing needs {package} (pip install 'hwsim[trace]'; the README says "
                      f"how to get the CPU build of torch): {e}", source=where)

_LAZY = {"trace": "api", "trace_template": "template", "cached_trace": "cache"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsim.trace' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
