"""SpAtten's top-k engine: quick-select with P comparators, then a compaction pass.

The engine finds the k-th largest score by quick-select: each pass streams the
``m`` candidates left through ``P`` comparators against a random pivot
(``ceil(m / P) + 3`` cycles: the comparators, the two zero eliminators that
split the candidates into the "less" and "greater" FIFOs, and the state
change), then continues in the side that holds the k-th element, until the
pivot is it. A final pass compares all ``n`` scores with that threshold, a
prefix sum over ties decides which equal ones are kept, and a zero eliminator
compacts the kept indices (``ceil(n / P)`` cycles plus its pipeline depth).
This is the RTL's ``QuickSelect``/``TopK`` and the authors' latency model
(``TopKLatencyModel.scala``).

Two ways to get the cycles:

- :func:`expected_cycles`: the mean over ``trials`` runs on distinct random
  scores with seeded pivots. Only ranks matter then, so a run is a walk over
  (candidates, target) pairs; results are cached. A table of the quick-select
  model's mean cycles computed apart from this code (P = 16, 200 random trials;
  ``TOPK_TABLE`` in tests/test_spatten.py) is reproduced within a few per cent.
- :func:`run`: one run on given scores (quantized to the datapath's width, so
  ties count as they do in hardware), pivots drawn from a seeded generator.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np



@dataclass(frozen=True)
class TopkCost:
    select_cycles: float  # the quick-select passes
    final_cycles: float  # compare, prefix sum, zero eliminator
    passes: float
    compares: float  # element comparisons (energy)

    @property
    def cycles(self) -> float:
        return self.select_cycles + self.final_cycles


def final_pass(n: int, parallelism: int, depth: int) -> float:
    return math.ceil(n / parallelism) + depth


@functools.lru_cache(maxsize=4096)
def expected_cycles(n: int, k: int, parallelism: int, overhead: int = 3, trials: int = 200,
                    seed: int = 1) -> tuple[float, float, float]:
    """Mean (select cycles, passes, compares) of quick-select for the k largest of n."""
    if k >= n or k <= 0 or n <= 1:
        return 0.0, 0.0, 0.0
    rng = random.Random(hash((seed, n, k, parallelism)) & 0xFFFFFFFF)
    target0 = n - k  # ascending index of the k-th largest
    tot_c = tot_p = tot_cmp = 0
    for _ in range(trials):
        m, t = n, target0
        while m > 0:
            tot_c += -(-m // parallelism) + overhead
            tot_p += 1
            tot_cmp += m
            r = rng.randrange(m)  # rank of the pivot among the m candidates
            if r <= t:
                if r + 1 > t:
                    break
                t -= r + 1
                m = m - r - 1
            else:
                m = r
    return tot_c / trials, tot_p / trials, tot_cmp / trials


def expected(n: int, k: int, parallelism: int, overhead: int, final_depth: int,
             trials: int = 200, seed: int = 1) -> TopkCost:
    c, p, cmp_ = expected_cycles(n, k, parallelism, overhead, trials, seed)
    fin = final_pass(n, parallelism, final_depth) if 0 < k < n else 0.0
    return TopkCost(c, fin, p, cmp_ + (n if fin else 0))


def quantize(scores: np.ndarray, bits: int) -> np.ndarray:
    """Scores as the datapath holds them: ``bits``-bit fixed point over their range."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    s = np.asarray(scores, dtype=np.float64).ravel()
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        return np.zeros(s.shape, dtype=np.int64)
    levels = (1 << bits) - 1
    return np.floor((s - lo) / (hi - lo) * levels + 0.5).astype(np.int64)


def run(scores: np.ndarray, k: int, parallelism: int, overhead: int, final_depth: int,
        seed: int = 1) -> TopkCost:
    """One quick-select on ``scores`` (integers, as quantized), seeded pivots."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    seq = np.asarray(scores).ravel()
    n = len(seq)
    if k >= n or k <= 0 or n <= 1:
        return TopkCost(0.0, 0.0, 0.0, 0.0)
    rng = random.Random(seed)
    t = n - k
    cycles = passes = compares = 0
    while len(seq):
        m = len(seq)
        cycles += -(-m // parallelism) + overhead
        passes += 1
        compares += m
        pivot = seq[rng.randrange(m)]
        less = seq[seq < pivot]
        n_eq = m - len(less) - int(np.count_nonzero(seq > pivot))
        if len(less) <= t:
            if len(less) + n_eq > t:
                break
            t -= len(less) + n_eq
            seq = seq[seq > pivot]
        else:
            seq = less
    fin = final_pass(n, parallelism, final_depth)
    return TopkCost(float(cycles), fin, float(passes), float(compares + n))


def random_scores(n: int, seed: int) -> np.ndarray:
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    return np.random.default_rng(seed).integers(0, 2**31 - 1, size=n)
