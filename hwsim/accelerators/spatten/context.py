"""What a lowering needs besides the op: the spec, the graph's roles, the top-k model.

:class:`Context` is built once per (graph, spec) by the target. It answers the
top-k engine's cycles for an op (expected or seeded, on real scores when the
workload's ``spatten`` step names a MiniLM scores file), the share of flat
attention rows that re-fetch their keys' LSBs (:mod:`.requant`, on the same
real scores in seeded mode), and where a tensor lives (:mod:`.residency`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import requant, topk
from .residency import REASON, Residency
from .roles import Roles
from .spec import SpattenSpec

if TYPE_CHECKING:
    import numpy as np

SEEDED_ROWS = 16  # rows of a many-row top-k that seeded mode runs (the rest take their mean)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Context:
    spec: SpattenSpec
    graph: object
    roles: Roles
    residency: Residency
    scores: "ScoreSource | None" = None

    def dram(self, tid: int) -> bool:
        """Does ``tid`` live in HBM (else on chip, see :mod:`.residency`)?"""
        return self.residency.dram(tid)

    def on_chip(self, tid: int) -> str:
        """Where on chip ``tid`` stays and why ("" when it lives in HBM)."""
        return REASON.get(self.residency.place(tid), "")

    def flat_fraction(self, op, keys: int) -> tuple[float, str]:
        """(share of ``op``'s attention rows whose largest probability is below
        ``requant_threshold`` with ``keys`` keys per row, how it was decided)."""
        s = self.spec
        if s.topk_mode == "seeded" and self.scores is not None and op is not None \
                and op.layer is not None:
            return (self.scores.flat_fraction(op.layer, keys, s.requant_threshold),
                    "seeded, real scores")
        return requant.expected_flat_fraction(keys, s.requant_threshold), "expected"

    def topk(self, n: int, k: int, rows: int, op=None, what: str = "cascade") -> tuple:
        """(TopkCost per row averaged, source label) for ``rows`` selections of k of n."""
        s = self.spec
        args = (s.topk_parallelism, s.topk_pass_overhead_cycles, s.topk_final_latency_cycles)
        if s.topk_mode == "expected" or k >= n or k <= 0:
            return topk.expected(n, k, *args, trials=s.topk_trials, seed=s.topk_seed), "expected"
        picks = list(range(rows)) if rows <= SEEDED_ROWS else [
            (i * rows) // SEEDED_ROWS for i in range(SEEDED_ROWS)]
        real = self.scores is not None and op is not None and op.layer is not None
        costs = []
        for r in picks:
            values = self.scores.row(op, r, n, what) if real else None
            if values is None:
                real = False
                values = topk.random_scores(n, s.topk_seed * 1_000_003 + r)
            q = topk.quantize(values, s.multiplier_bits)
            costs.append(topk.run(q, k, *args, seed=s.topk_seed + r))
        m = len(costs)
        mean = topk.TopkCost(sum(c.select_cycles for c in costs) / m,
                             sum(c.final_cycles for c in costs) / m,
                             sum(c.passes for c in costs) / m,
                             sum(c.compares for c in costs) / m)
        return mean, ("seeded, real scores" if real else "seeded, random scores")


class ScoreSource:
    """Attention probabilities of a real model, mapped onto a graph's layers."""

    def __init__(self, attention: np.ndarray, first_layer: int, num_layers: int, label: str):
        import numpy as np  # noqa: PLC0415 (loaded on first need)
        self.attention = attention  # [layer, head, query, key]
        self.first = first_layer
        self.num = max(1, num_layers)
        self.label = label
        self.importance = np.cumsum(attention.sum(axis=(1, 2)), axis=0)  # [layer, token]
        self._flat: dict[tuple, float] = {}

    def _layer(self, layer: int) -> int:
        local = max(0, layer - self.first)
        depth = self.attention.shape[0]
        return min(depth - 1, (local * depth) // self.num)

    def row(self, op, r: int, n: int, what: str) -> np.ndarray | None:
        """The scores row ``r`` of ``op``'s top-k, resampled to ``n`` values."""
        import numpy as np  # noqa: PLC0415 (loaded on first need)
        if what == "cascade":  # importance accumulated over the layers before
            src = self._layer(op.layer)
            values = self.importance[max(0, src - 1)]
            values = np.sort(values)[::-1]
            values = values[:n] if len(values) >= n else values
        else:  # a probability row of one head and query
            att = self.attention[self._layer(op.layer)]
            heads, queries = att.shape[0], att.shape[1]
            values = att[r % heads, (r // heads) % queries]
        return _resample(values, n)


    def flat_fraction(self, layer: int, n: int, threshold: float) -> float:
        """Share of the (head, query) probability rows of ``layer`` whose largest
        probability is below ``threshold`` once each row is stretched to ``n`` keys."""
        key = (self._layer(layer), n, threshold)
        if key not in self._flat:
            att = self.attention[key[0]]
            rows = att.reshape(-1, att.shape[-1])
            self._flat[key] = requant.flat_share(rows, n, threshold)
        return self._flat[key]


def _resample(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` values with the distribution of ``values`` (quick-select sees only the multiset)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    v = np.sort(np.asarray(values, dtype=np.float64))
    if len(v) == n:
        return v
    return np.quantile(v, np.linspace(0.0, 1.0, n))


def score_source(graph) -> ScoreSource | None:
    """The MiniLM scores a ``spatten`` pruning step of ``graph`` was derived from, if any."""
    for rec in graph.header.get("pruning") or []:
        if rec.get("method") != "spatten":
            continue
        path = rec.get("scores_path") or (rec.get("params") or {}).get("scores")
        if not path:
            continue
        found = _find(str(path))
        if found is None:
            continue
        att = _read(found, os.path.getmtime(found))
        return ScoreSource(att, int(rec.get("first_layer", 0)),
                           len(rec.get("tokens_per_layer") or []) or att.shape[0],
                           os.path.basename(found))
    return None


def _find(path: str) -> str | None:
    """A scores path as the workload gave it: absolute, or relative to the working
    directory or to the repository's ``workloads/`` folder (where shipped workloads are)."""
    for cand in (path, os.path.join(REPO, "workloads", path), os.path.join(REPO, path)):
        if os.path.isfile(cand):
            return os.path.abspath(cand)
    return None


@functools.lru_cache(maxsize=4)
def _read(path: str, _mtime: float) -> np.ndarray:
    from hwsim.ir.scores import read_scores  # noqa: PLC0415 - numpy only

    return read_scores(path).attention
