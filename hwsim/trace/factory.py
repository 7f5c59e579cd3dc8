"""Tracing a user's model: ``hwsim trace mypkg.mod:factory``.

**The contract.** A factory is a function importable as
``package.module:function`` that returns ``(model, example_inputs)``: an
``nn.Module`` and either a dict of keyword arguments or a tuple of positional
arguments for its forward. It may declare any of the keyword parameters

``batch``, ``seq_len``
    the sequences and tokens to build the inputs for (``hwsim trace --batch
    --seq``, a workload's ``batch`` and ``seq_len``);
``kv_len``, ``phase``
    for a decoder that has a decode step: the tokens already in its cache and
    ``"prefill"`` or ``"decode"``,

and then receives them (a ``**kwargs`` parameter receives all four). A factory
that declares none builds one fixed size: its example inputs are what is
traced, whatever ``--seq`` says, so ``hwsim trace`` refuses ``--seq``,
``--batch`` and ``--template`` for it with a message that says to add the
parameters. Only a factory that takes ``batch`` and ``seq_len`` (``kv_len``
for a decode) can be traced on the grid of sizes that a template is fitted
from (:mod:`hwsim.trace.template`)::

    # mypkg/mod.py, run as: hwsim trace mypkg.mod:factory --seq 512 -o mine.json.gz
    def factory(batch=1, seq_len=128):
        with torch.device("meta"):
            model = MyModel()
        return model, {"input_ids": torch.zeros(batch, seq_len, dtype=torch.long)}

The module is imported with the current working directory on ``sys.path``
(a console script does not put it there, ``python -m`` does), so a package in
the project folder is found.

The model may live on the ``meta`` device (build it under
``with torch.device("meta"):``, the way to trace big models) or be an ordinary
CPU model. The example inputs may be real tensors: each is re-made as a fake
tensor of the same shape (on the model's device) and floating inputs and the
model are cast to the trace dtype, so the forward pass allocates nothing. A
model whose forward branches on tensor *values* (``if x.sum() > 0``) cannot be
traced without data and fails with a one-line error naming the factory.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from typing import Any, Callable, Iterator

import torch

from ..errors import InputError
from .zoo import Prepared

SIZE_PARAMETERS = ("batch", "seq_len", "kv_len", "phase")


def is_factory(model: str) -> bool:
    return ":" in model and not os.path.exists(model)


@contextlib.contextmanager
def cwd_importable() -> Iterator[None]:
    """The current working directory on ``sys.path`` while importing a factory (as
    ``python -m`` has it; a console script like ``hwsim`` does not)."""
    cwd = os.getcwd()
    if "" in sys.path or cwd in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)


def resolve(spec: str) -> Callable[..., Any]:
    """The factory function named by ``spec`` (``package.module:function``)."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise InputError(f"factory {spec!r} must be 'package.module:function'", field="model")
    with cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise InputError(f"cannot import {module_name!r} for factory {spec!r} (from "
                             f"{os.getcwd()} and sys.path): {e}", field="model") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise InputError(f"module {module_name!r} has no function {func_name!r}", field="model")
    return factory


def size_parameters(spec: str) -> tuple[str, ...]:
    """The sizes (of :data:`SIZE_PARAMETERS`) that factory ``spec`` accepts."""
    try:
        params = inspect.signature(resolve(spec)).parameters
    except (TypeError, ValueError):  # a builtin or C function: no signature
        return ()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return SIZE_PARAMETERS
    return tuple(n for n in SIZE_PARAMETERS if n in params and params[n].kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def load(spec: str, dtype: torch.dtype, **sizes: Any) -> Prepared:
    """Import and call the factory ``spec`` with the ``sizes`` it declares, and wrap
    what it returns."""
    factory = resolve(spec)
    accepted = size_parameters(spec)
    result = factory(**{k: v for k, v in sizes.items() if k in accepted})
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
            "vocab": "vocab_size", "layers": "num_hidden_layers",
            "max_positions": "max_position_embeddings"}
    facts = {k: getattr(cfg, attr) for k, attr in keys.items()
             if isinstance(getattr(cfg, attr, None), int)}
    return facts
