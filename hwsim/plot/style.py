"""House style for figures: readable fonts, vector-friendly output, labelled units.

Every plot of :mod:`hwsim.plot` draws inside :func:`paper` (a matplotlib
``rc_context``): 9-point fonts, TrueType fonts embedded in PDF (type 42, which
journals and arXiv accept) and text kept as text in SVG, light grids, no top
and right spines. Figures are sized in inches for a paper column
(:data:`COLUMN_IN` wide) or a full page width (:data:`PAGE_IN`).

Quantities are stored in SI base units (``latency_s``, ``energy_j``,
``dram_bytes``); :func:`label` turns a column into an axis label with its unit
and picks an SI prefix that fits the data, so an axis reads "latency (ms)"
with values 0.2 to 40 rather than "latency_s" with values 2e-4 to 4e-2.

:func:`save` writes a figure by extension: ``.pdf`` and ``.svg`` are vector
output for papers, ``.png`` (at 200 dpi) for notebooks and slides.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterable

COLUMN_IN = 3.4
PAGE_IN = 7.0

RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "legend.fontsize": 7.5, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.5, "lines.linewidth": 1.3, "lines.markersize": 4,
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
    "savefig.bbox": "tight", "savefig.pad_inches": 0.03, "figure.dpi": 110,
    "figure.constrained_layout.use": True,
}

# column -> (quantity, base unit); a unit of "" means a plain count
QUANTITIES: dict[str, tuple[str, str]] = {
    "latency_s": ("latency", "s"), "start_s": ("time", "s"), "energy_j": ("energy", "J"),
    "energy_compute_j": ("compute energy", "J"), "energy_onchip_j": ("on-chip energy", "J"),
    "energy_dram_j": ("DRAM energy", "J"), "energy_static_j": ("static energy", "J"),
    "energy_interconnect_j": ("interconnect energy", "J"),
    "dram_bytes": ("DRAM traffic", "B"), "dram_read_bytes": ("DRAM reads", "B"),
    "dram_write_bytes": ("DRAM writes", "B"), "flops": ("work", "FLOP"),
    "dense_flops": ("dense work", "FLOP"), "cycles": ("cycles", ""),
    "flops_per_s": ("throughput", "FLOP/s"), "bytes_per_s": ("bandwidth", "B/s"),
    "intensity": ("arithmetic intensity", "FLOP/B"), "seq_len": ("sequence length", "tokens"),
    "kv_len": ("KV-cache length", "tokens"), "batch": ("batch", "sequences"),
    "edp_js": ("energy-delay product", "J·s"),
    # a generation's request figures (hwsim.report.generation)
    "ttft_s": ("time to first token", "s"), "tpot_s": ("time per output token", "s"),
    "tpot_p50_s": ("median time per output token", "s"),
    "tpot_p90_s": ("p90 time per output token", "s"),
    "tpot_p99_s": ("p99 time per output token", "s"),
    "tokens_per_s": ("throughput", "token/s"),
    "energy_per_token_j": ("energy per token", "J"),
    "dram_bytes_per_token": ("DRAM traffic per token", "B"),
    "kv_cache_bytes": ("KV cache", "B"), "peak_memory_bytes": ("peak memory", "B"),
    "new_tokens": ("new tokens", "tokens"),
}
_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
             15: "P"}
_NO_PREFIX = {"", "tokens", "sequences", "FLOP/B"}


@contextlib.contextmanager
def paper():
    """The house style as a context: ``with paper(): fig, ax = plt.subplots()``."""
    import matplotlib  # noqa: PLC0415

    with matplotlib.rc_context(RC):
        yield


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend unless a backend is already chosen."""
    import matplotlib  # noqa: PLC0415

    if "inline" not in matplotlib.get_backend() and "ipympl" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def prefix_for(values: Iterable[float]) -> int:
    """The power of 1000 that puts the largest magnitude in [1, 1000)."""
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))
              and float(v) != 0]
    if not finite:
        return 0
    exp = int(math.floor(math.log10(max(finite)) / 3) * 3)
    return max(-12, min(15, exp))


def quantity(column: str) -> tuple[str, str]:
    """(quantity name, base unit) of a column; unknown columns keep their name."""
    if column in QUANTITIES:
        return QUANTITIES[column]
    name = column.split(".")[-1] if "." in column else column
    for suffix, unit in (("_bytes_per_s", "B/s"), ("_flops_per_s", "FLOP/s"), ("_hz", "Hz"),
                         ("_bytes", "B"), ("_s", "s"), ("_j", "J"), ("_w", "W")):
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("_", " "), unit
    return name.replace("_", " "), ""


def label(column: str, values: Iterable[float] | None = None,
          name: str | None = None) -> tuple[str, float]:
    """An axis label with its unit, and the factor to multiply the values by.

    ``label("latency_s", [2e-4, 4e-2])`` is ``("latency (ms)", 1e3)``.
    """
    qty, unit = quantity(column)
    qty = name or qty
    if unit in _NO_PREFIX or values is None:
        return (f"{qty} ({unit})" if unit else qty), 1.0
    exp = prefix_for(values)
    if unit == "s" and exp > 0:
        exp = 0
    return f"{qty} ({_PREFIXES[exp]}{unit})", 10.0 ** -exp


def save(fig: Any, path: str | os.PathLike | None) -> Any:
    """Write ``fig`` to ``path`` (format from the extension; PNG at 200 dpi)."""
    if path is None:
        return fig
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with paper():
        fig.savefig(path, dpi=200 if path.lower().endswith(".png") else None)
    from ..progress import advance  # noqa: PLC0415

    advance()  # a figure more on hwsim plot's progress bar, if one is drawn
    return fig


def ok_rows(df):
    """The successful rows of a sweep's results (failed points carry no numbers)."""
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return df


def categorical(values) -> bool:
    """Whether a column should be coloured by category rather than by a colour scale."""
    import pandas as pd  # noqa: PLC0415

    s = pd.Series(values)
    return not pd.api.types.is_numeric_dtype(s) or s.nunique() <= 8


def value_label(v: Any) -> str:
    """A legend entry for a value: 0.30000000000000004 -> 0.3, 1e12 -> 1e+12."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
