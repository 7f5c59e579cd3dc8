"""Progressive quantization's decision: which attention rows re-fetch their keys' LSBs.

SpAtten fetches keys as MSBs (6 or 8 bits) first. After the softmax, the
``RequantDecision`` unit of the RTL (github mit-han-lab/spatten,
``spatten_hardware/.../RequantDecision.scala``) takes the largest probability
of the row through a max tree and flags the row when it is below the
threshold register (``thres_requantize``; ``requant_threshold``, 0.05 in the
released traces' ``auto_requant_thres``): a flat attention is sensitive to the
quantization error of its scores, so the controller sends the request round
again with the 4-bit LSBs of the same keys, and Q·K and the softmax are
recomputed. A peaked row keeps its MSB-only result.

Whether a row is flat depends on the data. Two ways to know it:

- **seeded, real scores** (``topk_mode: seeded`` with a MiniLM scores file,
  :class:`.context.ScoreSource`): each probability row of the layer, stretched
  to the op's key count (its sorted values resampled, then renormalized), is
  tested against the threshold; :func:`flat_share` gives the share of rows
  that fail.
- **expected** (otherwise): the largest probability of a row of ``n`` keys is
  ``r / n``, where ``r`` (the peak-to-mean ratio: 1 for a uniform row, ``n``
  for a one-hot row) is log-normal with median ``exp(LOG_RATIO_MEDIAN)`` =
  53.3 and log-standard deviation ``LOG_RATIO_SIGMA`` = 0.623. A row is flat
  when ``r < threshold * n``, so the flat share is
  ``Phi((ln(threshold * n) - 3.975) / 0.623)`` and exactly 0 when
  ``threshold * n <= 1`` (no row of ``n`` keys has a largest probability below
  ``1 / n``). The two parameters are the maximum-likelihood probit fit to the
  4,608 re-fetch decisions of SpAtten's released GPT-2 small trace
  (``summary-gpt2-small-wikitext2-per8.csv`` of the authors' repository, made
  on GPT-2 small's real attention on WikiText-2 at threshold 0.05, key counts
  102 to 1,024): the fit predicts 321 re-fetching rows where the trace has 323
  (test ``test_expected_flat_model_is_the_trace_fit`` re-derives it from the
  trace). Calibrated on that trace, it cannot validate against it; the trace
  replay itself uses the trace's own per-row decisions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


# probit fit of the released GPT-2 small trace's if_requant on ln(auto_requant_thres x
# key_fetch_num) over its 4,608 rows (see the module docstring; D from V data)
LOG_RATIO_MEDIAN = 3.975  # ln 53.3: median peak-to-mean ratio of a probability row
LOG_RATIO_SIGMA = 0.623


def expected_flat_fraction(n: int, threshold: float) -> float:
    """Share of rows of ``n`` keys whose largest probability is below ``threshold``."""
    x = threshold * n
    if n <= 0 or x <= 1.0:
        return 0.0
    z = (math.log(x) - LOG_RATIO_MEDIAN) / LOG_RATIO_SIGMA
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def flat_share(rows: np.ndarray, n: int, threshold: float) -> float:
    """Share of probability ``rows`` ([R, L]) flat at ``threshold`` once stretched to ``n``
    keys: each row's sorted values resampled to ``n`` (linear interpolation between
    quantiles), renormalized; flat when the largest is below ``threshold``."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    s = np.sort(np.asarray(rows, dtype=np.float64), axis=1)
    count, length = s.shape
    if count == 0 or n <= 0:
        return 0.0
    if length == 1:
        weights = np.array([float(n)])
    else:
        pos = np.linspace(0.0, length - 1.0, n)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, length - 1)
        frac = pos - lo
        weights = (np.bincount(lo, 1.0 - frac, length) + np.bincount(hi, frac, length))
    total = s @ weights
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = np.where(total > 0, s[:, -1] / total, 1.0)
    return float(np.count_nonzero(peak < threshold)) / count
