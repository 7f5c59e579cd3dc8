"""``trace()``: one model, one size, one phase -> one :class:`hwsim.ir.Graph`.

The steps, each in its own module:

1. build the model and its inputs: a zoo model (:mod:`~hwsim.trace.zoo`), a
   model from a ``config.json`` path or a cached Hugging Face id
   (:mod:`~hwsim.trace.hub`, built by :func:`hwsim.trace.zoo.prepare_config`)
   or a user's factory (:mod:`~hwsim.trace.factory`);
2. run the forward pass on fake tensors while recording it
   (:mod:`~hwsim.trace.recorder`);
3. fuse RMSNorm, rotary, GELU and attention chains (:mod:`~hwsim.trace.fuse`);
4. lower to canonical ops with layers and module paths
   (:mod:`~hwsim.trace.lower`, :mod:`~hwsim.trace.aten_map`,
   :mod:`~hwsim.trace.stacks`);
5. verify the graph; a trace that does not verify is a bug in the tracer and
   raises ``RuntimeError`` listing the problems.

The graph header::

    name, model, phase, batch, seq_len, kv_len, dtype,
    segments     {"text": [0, 35], "visual": [35, 611], "question": [611, seq_len]} or {}
    stacks       {"decoder": {"first_layer": 0, "num_layers": 32}}
    config       {"hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "layers", ...}
    traced_with  {"torch": "2.13.0+cpu", "transformers": "5.23.0"}

A model from a config adds ``config_digest`` (:func:`hwsim.trace.hfconfig.digest`)
and its config facts include ``max_positions`` (the context limit) and any
``rope_scaling``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
)

from ..errors import InputError
from ..ir import Graph
from . import factory, hub, zoo
from .fuse import fuse
from .lower import lower
from .recorder import Recorder
from .stacks import find_stacks, stacks_header
from .zoo_names import PHASES, ZOO

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def check_size(phase: str, seq_len: int, kv_len: int, batch: int, dtype: str,
               attn_implementation: str = "sdpa") -> None:
    """Raise :class:`InputError` naming the first bad argument."""
    if phase not in PHASES:
        raise InputError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}",
                         field="phase")
    for name, value, low in (("seq_len", seq_len, 1), ("batch", batch, 1), ("kv_len", kv_len, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}", field=name)
    if phase == "prefill" and kv_len != 0:
        raise InputError(f"a prefill starts from an empty KV cache: kv_len must be 0, got "
                         f"{kv_len}", field="kv_len")
    if phase == "decode" and kv_len < 1:
        raise InputError("a decode step needs a KV cache: kv_len must be >= 1", field="kv_len")
    if dtype not in zoo.TORCH_DTYPES:
        raise InputError(f"dtype must be one of {', '.join(zoo.TORCH_DTYPES)}, got {dtype!r}",
                         field="dtype")
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise InputError(f"attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}"
                         f", got {attn_implementation!r}", field="attn_implementation")


def trace(model: str, *, seq_len: int, phase: str = "prefill", kv_len: int = 0, batch: int = 1,
          dtype: str = "fp16", attn_implementation: str = "sdpa",
          layers: int | None = None, image: tuple[int, int] | None = None,
          frames: int = 0) -> Graph:
    """Trace ``model`` into a graph: a zoo name, a ``config.json`` path (or its folder), a
    Hugging Face id in the local cache, or ``"package.module:factory"``.

    ``layers`` overrides a zoo or config model's number of blocks (for quick tests).
    A vision-language model reads ``image`` (``(height, width)`` px, None: its default,
    :mod:`hwsim.trace.images`) and ``frames`` (video; 0: a still image); the header's
    ``image`` records the processed size and the frames.
    """
    check_size(phase, seq_len, kv_len, batch, dtype, attn_implementation)
    extra: dict[str, Any] = {}
    if model in ZOO:
        prepared = zoo.prepare(model, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                               dtype=dtype, attn_implementation=attn_implementation,
                               layers=layers, image=image, frames=frames)
    elif factory.is_factory(model):
        if image is not None or frames:
            raise InputError("image and frames are for a vision-language model of the zoo or "
                             "a config; a factory builds its own inputs", field="image")
        prepared = factory.load(model, zoo.TORCH_DTYPES[dtype], batch=batch, seq_len=seq_len,
                                kv_len=kv_len, phase=phase)
    else:
        source = hub.resolve(model)
        if source is None:  # not a config either: the zoo's error lists what there is
            zoo.prepare(model, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                        dtype=dtype, attn_implementation=attn_implementation)
        model = source.model
        prepared = zoo.prepare_config(source.config, phase=phase, batch=batch, seq_len=seq_len,
                                      kv_len=kv_len, dtype=dtype,
                                      attn_implementation=attn_implementation, layers=layers,
                                      where=source.path, image=image, frames=frames)
        extra["config_digest"] = source.digest
    rule = zoo.vision_rule(model) if not factory.is_factory(model) else None
    if rule is not None and phase == "prefill" and not rule.fixed_size:
        h, w = rule.canonical(image, frames)
        extra["image"] = {"height": h, "width": w, "frames": frames}
    header: dict[str, Any] = {
        "name": f"{model}.{phase}", "model": model, "phase": phase, "batch": batch,
        "seq_len": seq_len, "kv_len": kv_len, "dtype": dtype,
        "segments": prepared.segments, "stacks": {}, "config": prepared.config,
        "traced_with": versions(), **extra,
    }
    return record(prepared, header)


def record(prepared: zoo.Prepared, header: dict[str, Any]) -> Graph:
    """Run ``prepared`` on fake tensors and return its verified graph."""
    # A failing op logs its traceback before raising; the error below says it in a line.
    with _quiet("torch._subclasses.fake_tensor"), FakeTensorMode(allow_non_fake_inputs=True):
        inputs = prepared.make_inputs()
        recorder = Recorder(prepared.model)
        for value in inputs.values():
            if isinstance(value, torch.Tensor):
                recorder.add_input(value)
        with recorder.recording():
            try:
                prepared.run(inputs)
            except (DataDependentOutputException, DynamicOutputShapeException) as e:
                raise InputError(f"the forward of {header['model']} depends on tensor values "
                                 f"({type(e).__name__}: {e}); hwsim traces on fake tensors, "
                                 f"which have shapes but no values", field="model") from None
            except Exception as e:
                msg = " ".join(str(e).split())
                if factory.is_factory(str(header["model"])):
                    raise InputError(f"the forward of {header['model']} failed on fake tensors "
                                     f"of the example inputs' shapes: {type(e).__name__}: {msg}",
                                     field="model") from None
                if "config_digest" in header:  # a user's config of an architecture we cannot
                    raise InputError(f"hwsim cannot trace {header['model']} from its config "
                                     f"(its forward fails on fake tensors: "
                                     f"{type(e).__name__}: {msg}); trace it from a factory "
                                     f"(docs/models.md)", field="model") from None
                raise  # a zoo model that fails is hwsim's bug: keep the traceback
    raw = recorder.trace
    stacks = find_stacks(prepared.model, prepared.stack_names)
    graph = lower(raw, fuse(raw), header, stacks)
    graph.header["stacks"] = stacks_header(graph, stacks)
    problems = graph.verify()
    if problems:
        shown = "\n  ".join(problems[:20])
        raise RuntimeError(f"hwsim.trace produced an invalid graph for {header['model']} "
                           f"({len(problems)} problems):\n  {shown}")
    return graph


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence ``logger`` below CRITICAL for the duration."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
