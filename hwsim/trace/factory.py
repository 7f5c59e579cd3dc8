"""Tracing a user's model: ``hwsim trace mypkg.mod:factory``.

A factory is a function of no arguments, importable as ``package.module:name``,
that returns ``(model, example_inputs)``: an ``nn.Module`` and either a dict of
keyword arguments or a tuple of positional arguments for its forward.

The model may live on the ``meta`` device (build it under
``with torch.device("meta"):``, the way to trace big models) or be an ordinary
CPU model. The example inputs may be real tensors: each is re-made as a fake
tensor of the same shape (on the model's device) and floating inputs and the
model are cast to the trace dtype, so the forward pass allocates nothing. A
model whose forward branches on tensor *values* (``if x.sum() > 0``) cannot be
traced without data and fails with PyTorch's error about data-dependent control
flow.

The workload size arguments of :func:`hwsim.trace.trace` (``seq_len``,
``batch``, ``kv_len``) are only recorded in the header of a factory trace: the
example inputs fix the shapes.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from ..errors import InputError
from .zoo import Prepared


def is_factory(model: str) -> bool:
    return ":" in model


def load(spec: str, dtype: torch.dtype) -> Prepared:
    """Import and call the factory ``spec`` and wrap what it returns."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise InputError(f"factory {spec!r} must be 'package.module:function'", field="model")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"cannot import {module_name!r} for factory {spec!r}: {e}",
                         field="model") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise InputError(f"module {module_name!r} has no function {func_name!r}", field="model")
    result = factory()
    if not (isinstance(result, tuple) and len(result) == 2
            and isinstance(result[0], torch.nn.Module)):
        raise InputError(f"factory {spec!r} must return (model, example_inputs), got "
                         f"{type(result).__name__}", field="model")
    model, example = result
    if not isinstance(example, (dict, tuple, list)):
        raise InputError(f"factory {spec!r}: example_inputs must be a dict of keyword arguments "
                         f"or a tuple of positional arguments, got {type(example).__name__}",
                         field="model")
    model = model.to(dtype).eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    def make() -> dict[str, Any]:
        def fake(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                dt = dtype if value.is_floating_point() else value.dtype
                return torch.zeros(value.shape, dtype=dt, device=device)
            return value
        if isinstance(example, dict):
            return {k: fake(v) for k, v in example.items()}
        return {f"arg{i}": fake(v) for i, v in enumerate(example)}

    def run(inputs: dict[str, Any]) -> Any:
        if isinstance(example, dict):
            return model(**inputs)
        return model(*inputs.values())

    return Prepared(model, make, run, config=_config_facts(model))


def _config_facts(model: torch.nn.Module) -> dict[str, Any]:
    """A few facts from a ``transformers`` config, when the model has one."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return {}
    keys = {"hidden": "hidden_size", "heads": "num_attention_heads",
            "kv_heads": "num_key_value_heads", "ffn": "intermediate_size",
            "vocab": "vocab_size", "layers": "num_hidden_layers"}
    facts = {k: getattr(cfg, attr) for k, attr in keys.items()
             if isinstance(getattr(cfg, attr, None), int)}
    return facts
