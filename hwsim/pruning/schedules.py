"""Keep schedules from real attention scores.

A scores file (``hwsim.scores/1``, :mod:`hwsim.ir.scores`; docs/pruning.md, "Scores
files") holds every layer's and head's attention probabilities of one model on one
prompt, ``[layer, head, query, key]``, with the model's name; ``hwsim trace minilm-l6
--scores`` and ``python -m hwsim.trace.record_scores`` record one. This module, which
needs only numpy, turns scores into schedules:

- :func:`token_importance`: SpAtten's cumulative importance, each token's
  attention received, summed over heads and queries and accumulated over
  layers;
- :func:`threshold_schedule`: cascade pruning that keeps, at each layer, the
  fewest tokens holding ``mass`` of the importance accumulated so far among
  the tokens still alive (layer 0 keeps all);
- :func:`ratio_schedule`: a fixed fraction from layer 1 on;
- :func:`select_tokens`: the tokens a fixed ratio keeps, by importance.

A schedule is a small JSON file (``{"schema": "hwsim.schedule/1", "keep":
[...]}``) that a workload references (``{method: spatten, schedule: FILE}``);
a workload may also reference the scores directly (``scores: FILE``, with
``mass``). Files are JSON or ``.npz`` read without pickle.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..ir.scores import read_scores, scores_mismatch
from ..yamlfile import resolve_path

SCHEDULE_SCHEMA = "hwsim.schedule/1"
DEFAULT_MASS = 0.9


def token_importance(attention: np.ndarray) -> np.ndarray:
    """``[layer, token]``: attention each token received, accumulated up to each layer."""
    per_layer = attention.sum(axis=(1, 2))
    return np.cumsum(per_layer, axis=0)


def threshold_schedule(attention: np.ndarray, mass: float = DEFAULT_MASS) -> list[float]:
    """Cascade keep fractions: each layer keeps the fewest alive tokens holding ``mass``.

    Layer ``l`` is decided from the importance accumulated over layers ``< l``
    (what the hardware has seen when it prunes); layer 0 keeps every token.
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    layers, n = attention.shape[0], attention.shape[-1]
    imp = token_importance(attention)
    alive = np.arange(n)
    out = [1.0]
    for layer in range(1, layers):
        scores = imp[layer - 1, alive]
        order = np.argsort(-scores, kind="stable")
        cum = np.cumsum(scores[order])
        need = int(np.searchsorted(cum, mass * cum[-1] * (1 - 1e-6)) + 1)  # float32 sums
        alive = np.sort(alive[order[:min(need, len(alive))]])
        out.append(len(alive) / n)
    return out


def ratio_schedule(layers: int, keep: float) -> list[float]:
    """Keep ``keep`` of the tokens from layer 1 on (layer 0 sees them all)."""
    return [1.0] + [float(keep)] * (layers - 1)


def select_tokens(attention: np.ndarray, keep: float,
                  always: Sequence[int] = ()) -> np.ndarray:
    """Indices of the ``keep`` fraction of tokens with the most cumulative importance."""
    n = attention.shape[-1]
    k = max(len(always), int(round(keep * n)))
    imp = token_importance(attention)[-1].copy()
    imp[list(always)] = np.inf
    return np.sort(np.argsort(-imp, kind="stable")[:k])


def write_schedule(path: str | os.PathLike, keep: Sequence[float], **meta) -> None:
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        json.dump({"schema": SCHEDULE_SCHEMA, "keep": [float(x) for x in keep], **meta}, f,
                  indent=1)


def read_schedule(path: str | os.PathLike) -> list[float]:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise InputError("schedule file not found", source=path) from None
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"not a JSON schedule: {e}", source=path) from None
    keep = doc.get("keep") if isinstance(doc, dict) else None
    if not isinstance(keep, list) or not keep or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1
            for x in keep):
        raise InputError("expected {\"keep\": [fractions in (0, 1], one per layer]}",
                         source=path, field="keep")
    return [float(x) for x in keep]


def resample(fractions: Sequence[float], layers: int) -> list[float]:
    """A schedule of another depth stretched to ``layers`` (nearest earlier layer)."""
    n = len(fractions)
    if n == layers:
        return list(fractions)
    return [fractions[min(n - 1, (i * n) // layers)] for i in range(layers)]


def resolve_schedule(plan, step) -> tuple[list[float], str]:
    """The per-layer keep fractions a ``schedule:`` or ``scores:`` step names."""

    if step.get("schedule") is not None and step.get("scores") is not None:
        raise step.error("schedule", "give either schedule or scores, not both")
    if step.get("keep") is not None:
        raise step.error("keep", "give either keep or a schedule/scores file, not both")
    if step.get("schedule") is not None:
        path = resolve_path(step.get("schedule"), step.source)
        fractions, what = read_schedule(path), f"schedule {step.get('schedule')}"
    else:
        path = resolve_path(step.get("scores"), step.source)
        mass = float(step.get("mass", DEFAULT_MASS))
        scores = read_scores(path)
        n = plan.base["seq_len"] if plan.phase == "prefill" else \
            plan.base["kv_len"] + plan.base["seq_len"]
        why = scores_mismatch(scores, plan.model, plan.num,
                              plan.dense_heads[0] if plan.dense_heads else 0, n)
        if why:
            raise step.error("scores", f"{step.get('scores')}: {why}")
        fractions = threshold_schedule(scores.attention, mass)
        what = f"scores {step.get('scores')} ({scores.model}) at mass {mass}"
    if any(b > a + 1e-12 for a, b in zip(fractions, fractions[1:])):
        raise step.error("schedule", f"{what}: a cascade keeps fewer tokens with depth, but "
                         f"the fractions grow: {fractions}")
    if len(fractions) != plan.num:
        what += f" ({len(fractions)} layers stretched to {plan.num})"
    return resample(fractions, plan.num), what
