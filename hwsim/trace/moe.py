"""Mixture-of-experts blocks: a ``transformers`` experts module as one ``moe_experts`` op.

A sparse MoE block (Mixtral's ``MixtralSparseMoeBlock``, Qwen2-MoE's, Qwen3-MoE's,
OLMoE's) is a router and a bank of expert FFNs. The router is ordinary tensor
code (a ``linear`` to one logit per expert, a softmax, a ``topk``, the
renormalisation of the top-k weights) and is traced as such. The experts are
not: transformers 5.x keeps every expert's weights in two 3-D parameters of one
module (``gate_up_proj`` [experts, 2·ffn, hidden], ``down_proj`` [experts, hidden,
ffn]) and its eager forward loops over the experts that the routing hit
(``nonzero`` of a one-hot of the top-k ids, then ``where`` per expert). That
loop depends on the ids' *values*: on fake tensors it cannot run at all, and a
traced run would record one particular routing. So the recorder
(:mod:`hwsim.trace.recorder`) treats such a module as a leaf: its forward is not
run, and one ``moe_experts`` op (:mod:`hwsim.ir.kinds`) is recorded with inputs
``x`` [tokens, hidden], ``index`` [tokens, top_k] (the router's expert ids),
``weight`` [tokens, top_k] (the routing weights) and the two weight parameters,
and an output of ``x``'s shape. How the tokens spread over the experts is the
workload's to say (:mod:`hwsim.moe` expands the op before
simulation), not the trace's.

An **experts module** is a module whose class name ends in ``Experts`` and
that has 3-D parameters ``gate_up_proj`` and ``down_proj``. Its layout must be
the one above: gate and up projections stacked on dim 1 (concatenated or
interleaved: the FLOPs and bytes are the same), not transposed, without biases
and without a norm after each expert (the flags transformers'
``use_experts_implementation`` sets on the module: ``is_transposed``,
``has_bias``, ``has_gate``, ``has_post_expert_norm``), with the default gate
(``act(gate) · up``, no class-specific ``_apply_gate`` such as GPT-OSS's
clamped SwiGLU). Another layout is an :class:`~hwsim.errors.InputError` before
the forward runs, naming the class and what differs, never a guess. A shared
expert (Qwen2-MoE's ``shared_expert``) is an ordinary MLP and is traced as one.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError

# The activation of the gated FFN, by the config's ``hidden_act`` (transformers'
# ACT2FN names) -> the moe_experts ``act`` attribute (hwsim.ir.kinds.MOE_ACTS).
ACTS: dict[str, str] = {
    "silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "relu": "relu",
}
# The same, by the class of the module's ``act_fn`` (for an experts module without a config).
_ACT_CLASSES: dict[str, str] = {
    "SiLU": "silu", "SiLUActivation": "silu", "GELU": "gelu", "GELUActivation": "gelu",
    "PytorchGELUTanh": "gelu_tanh", "GELUTanh": "gelu_tanh", "NewGELUActivation": "gelu_tanh",
    "FastGELUActivation": "gelu_tanh", "ReLU": "relu",
}
# The flags use_experts_implementation sets, and the value the moe_experts layout needs.
_FLAGS = (("is_transposed", False, "its weights are stored transposed"),
          ("has_bias", False, "its experts have biases"),
          ("has_gate", True, "it has no gate projection"),
          ("has_post_expert_norm", False, "it normalises each expert's output"))


def is_experts(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a transformers experts bank (see the module docstring)."""
    if not type(module).__name__.endswith("Experts"):
        return False
    params = dict(module.named_parameters(recurse=False))
    return all(name in params and params[name].dim() == 3
               for name in ("gate_up_proj", "down_proj"))


def experts_attrs(module: torch.nn.Module, path: str) -> dict[str, Any]:
    """The size-independent ``moe_experts`` attributes of experts module ``module``
    (``hidden``, ``ffn``, ``experts``, ``act``, ``gated``), or an InputError naming
    ``path``, the class and what hwsim cannot represent."""
    cls = type(module).__name__
    where = f"{path} ({cls})"
    experts, two_ffn, hidden = module.gate_up_proj.shape
    down = tuple(module.down_proj.shape)
    for flag, want, what in _FLAGS:
        if getattr(module, flag, want) != want:
            raise InputError(f"the experts module {where}: {what} ({flag}="
                             f"{getattr(module, flag)!r}); hwsim's moe_experts op takes "
                             f"gate_up_proj [experts, 2*ffn, hidden] and down_proj [experts, "
                             f"hidden, ffn] without biases or norms", field="model")
    if two_ffn % 2 or down != (experts, hidden, two_ffn // 2):
        raise InputError(f"the experts module {where}: gate_up_proj is "
                         f"{list(module.gate_up_proj.shape)} and down_proj {list(down)}; "
                         f"expected [experts, 2*ffn, hidden] and [experts, hidden, ffn]",
                         field="model")
    gate = type(module).__dict__.get("_apply_gate")
    if gate is not None and getattr(gate, "__module__", "") != "transformers.integrations.moe":
        raise InputError(f"the experts module {where} has its own gate function "
                         f"({cls}._apply_gate); hwsim's moe_experts op computes act(gate) * up",
                         field="model")
    return {"hidden": int(hidden), "ffn": int(two_ffn // 2), "experts": int(experts),
            "act": _act(module, where), "gated": True}


def _act(module: torch.nn.Module, where: str) -> str:
    """The gate activation: the config's ``hidden_act``, else the ``act_fn`` module's class."""
    config = getattr(module, "config", None)
    name = getattr(config, "hidden_act", None)
    if isinstance(name, str):
        if name in ACTS:
            return ACTS[name]
        raise InputError(f"the experts module {where} uses hidden_act {name!r}; hwsim's "
                         f"moe_experts op knows {', '.join(sorted(ACTS))}", field="model")
    act_cls = type(getattr(module, "act_fn", None)).__name__
    if act_cls in _ACT_CLASSES:
        return _ACT_CLASSES[act_cls]
    raise InputError(f"the experts module {where}: cannot tell its activation (no "
                     f"config.hidden_act, act_fn is {act_cls})", field="model")


def find_experts(model: torch.nn.Module) -> dict[int, tuple[str, dict[str, Any]]]:
    """The model's experts modules: ``id(module)`` -> (module path, static attributes)."""
    out: dict[int, tuple[str, dict[str, Any]]] = {}
    for path, m in model.named_modules():
        if is_experts(m):
            out[id(m)] = (path, experts_attrs(m, path))
    return out


def call_operands(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden_states, top_k_index, top_k_weights) of an experts module's forward call."""
    names = ("hidden_states", "top_k_index", "top_k_weights")
    bound = dict(zip(names, args))
    bound.update({k: v for k, v in kwargs.items() if k in names})
    missing = [n for n in names if not isinstance(bound.get(n), torch.Tensor)]
    if missing:
        raise TypeError(f"an experts module was called without {', '.join(missing)} "
                        f"(expected forward(hidden_states, top_k_index, top_k_weights))")
    return bound["hidden_states"], bound["top_k_index"], bound["top_k_weights"]
