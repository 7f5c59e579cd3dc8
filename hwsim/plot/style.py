"""House style for figures: readable fonts, vector-friendly output, labelled units.

Every plot of :mod:`hwsim.plot` draws inside :func:`paper` (a matplotlib
``rc_context``): 9-point fonts, TrueType fonts embedded in PDF (type 42, which
journals and arXiv accept) and text kept as text in SVG, light grids, no top
and right spines. Figures are sized in inches for a paper column
(:data:`COLUMN_IN` wide) or a full page width (:data:`PAGE_IN`).

Quantities are stored in SI base units (``latency_s``, ``energy_j``,
``dram_bytes``) and plotted as they are: :func:`axis_label` names the quantity
and its base unit ("latency (s)") and :func:`si_axis` puts matplotlib's
:class:`~matplotlib.ticker.EngFormatter` on the axis, so 1.2 ms reads ``1.2 m``
on a linear or a log axis alike (never ``4x10^0``, never an offset). Counts
without a unit prefix (tokens, sequences, FLOP/B) get plain numbers.

Colours are one mapping per process (:func:`category_colors`): a pruning
method, a target, an attention strategy or an op kind keeps its colour across
every panel and figure of a notebook or of one ``hwsim plot`` run, whatever
subset or order a figure shows. "dense" (the baseline) is always dark grey.

:func:`save` writes a figure by extension: ``.pdf`` and ``.svg`` are vector
output for papers, ``.png`` (at 200 dpi) for notebooks and slides.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
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
    if column.startswith("quality_"):  # a sweep's published quality (hwsim.accuracy)
        return f"published {column[len('quality_'):].replace('_', ' ')} score", ""
    name = column.split(".")[-1] if "." in column else column
    for suffix, unit in (("_bytes_per_s", "B/s"), ("_flops_per_s", "FLOP/s"), ("_hz", "Hz"),
                         ("_bytes", "B"), ("_s", "s"), ("_j", "J"), ("_w", "W")):
        if name.endswith(suffix):
            return name[: -len(suffix)].replace("_", " "), unit
    return name.replace("_", " "), ""


def label(column: str, values: Iterable[float] | None = None,
          name: str | None = None) -> tuple[str, float]:
    """A label with a prefixed unit, and the factor to multiply the values by.

    ``label("latency_s", [2e-4, 4e-2])`` is ``("latency (ms)", 1e3)``: for text
    outside an axis (a table's header). Axes keep SI values and use
    :func:`axis_label` with :func:`si_axis` instead.
    """
    qty, unit = quantity(column)
    qty = name or qty
    if unit in _NO_PREFIX or values is None:
        return (f"{qty} ({unit})" if unit else qty), 1.0
    exp = prefix_for(values)
    if unit == "s" and exp > 0:
        exp = 0
    return f"{qty} ({_PREFIXES[exp]}{unit})", 10.0 ** -exp


def axis_label(column: str, name: str | None = None) -> str:
    """An axis label with the column's base unit: ``"latency (s)"``, ``"DRAM traffic (B)"``.

    The ticks carry the SI prefix (:func:`si_axis`), so the label never does."""
    qty, unit = quantity(column)
    qty = name or qty
    return f"{qty} ({unit})" if unit else qty


def _tick_formatter_class():
    from matplotlib.ticker import EngFormatter  # noqa: PLC0415

    class TickFormatter(EngFormatter):
        """EngFormatter for ticks: ``1.2 m`` for 1.2e-3, the unit in the axis label.

        ``plain`` writes counts as they are (4096, not 4.096 k). As the minor
        formatter (``minor=True``) it labels a log axis's minor ticks only when
        the axis spans about a decade or less (where there would otherwise be
        one labelled tick or none), and then only at 2, 3 and 5 (every minor
        tick below a third of a decade, where they are few and far apart); on a
        linear axis it labels none."""

        def __init__(self, *, plain: bool = False, minor: bool = False):
            super().__init__(sep=" ", places=None, useMathText=False)
            self.plain = plain
            self.minor = minor

        def __call__(self, x, pos=None):
            if self.minor:
                if self.axis is None or self.axis.get_scale() != "log" or x <= 0:
                    return ""
                lo, hi = sorted(abs(v) for v in self.axis.get_view_interval())
                span = math.log10(hi / lo) if lo > 0 else math.inf
                mantissa = round(x / 10 ** math.floor(math.log10(x) + 1e-9), 6)
                if span > 1.3 or (span > 0.35 and mantissa not in (2.0, 3.0, 5.0)):
                    return ""
            if self.plain:
                return plain_number(x)
            return super().__call__(x, pos)

    return TickFormatter


def plain_number(x: float) -> str:
    """4096 -> ``4096``, 0.25 -> ``0.25``, 1e12 -> ``1e+12``: a count as people write it."""
    x = float(x)
    if math.isfinite(x) and x == int(x) and abs(x) < 1e7:
        return str(int(x))
    return f"{x:.4g}"


def si_axis(ax: Any, which: str, column: str | None = None, *,
            plain: bool | None = None) -> None:
    """Put SI tick labels on ``ax``'s ``which`` axis ("x", "y" or a colour bar's ``ax``).

    Major and minor ticks get an EngFormatter (plain numbers for counts such as
    tokens, or with ``plain=True``: ratios); call it after ``set_xscale`` or
    ``set_yscale``, which reset formatters."""
    unit = quantity(column)[1] if column else "x"
    if plain is None:
        plain = column is not None and (unit in _NO_PREFIX or column.startswith("quality_"))
    cls = _tick_formatter_class()
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_formatter(cls(plain=plain))
    axis.set_minor_formatter(cls(plain=plain, minor=True))


def is_number(v: Any) -> bool:
    """A real number (Python's or numpy's), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def format_value(column: str, v: Any, digits: int = 3) -> str:
    """A value with its unit for legends and labels, to ``digits`` significant
    digits: ``300 GB/s``, ``476 GB/s``, ``1.2 ms``; counts plain (``4096``)."""
    if not is_number(v):
        return str(v)
    unit = quantity(column)[1]
    v = float(v)
    if unit in _NO_PREFIX or not math.isfinite(v):
        return plain_number(v) + (f" {unit}" if unit and unit not in ("tokens", "sequences")
                                  else "")
    return si_number(v, digits, unit)


def si_number(v: float, digits: int = 3, unit: str = "") -> str:
    """``v`` to ``digits`` significant digits with an SI prefix: ``1.23 m``, ``476 G``."""
    from matplotlib.ticker import EngFormatter  # noqa: PLC0415

    v = float(v)
    if v and math.isfinite(v):
        v = round(v, digits - 1 - math.floor(math.log10(abs(v))))
    return EngFormatter(unit=unit, sep=" ")(v).strip()


# ---------------------------------------------------------------- colours
# tab10 (its grey swapped for an olive: grey is "other" and "dense"), then tab20's lighter
# shades: twenty colours told apart in print
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#bcbd22", "#17becf", "#637939", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
            "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#393b79"]
FIXED_COLORS = {"dense": "#404040", "other": "#b0b0b0"}
_ASSIGNED: dict[Any, str] = {}


def _color_key(column: str | None, v: Any) -> Any:
    if is_number(v):
        return ("number", column, float(v))  # numbers mean something only in their column
    return str(v)


def natural_key(v: Any) -> list:
    """Sort key that puts ``sm2`` before ``sm10`` and numbers in numeric order."""
    if is_number(v):
        return [0, float(v)]
    return [1] + [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", str(v))]


def category_colors(values: Iterable[Any], column: str | None = None) -> dict[Any, str]:
    """One colour per distinct value, the same for the life of the process.

    A value seen before keeps its colour (a strategy is one colour in every
    panel); a new one gets the first palette colour no value has yet, or, once
    all are taken, the first one no other value of this call uses. Values new
    together are coloured in natural order, so a fresh process colours them
    alphabetically (numbers ascending)."""
    distinct = sorted(dict.fromkeys(values), key=natural_key)
    out: dict[Any, str] = {}
    for v in distinct:
        key = _color_key(column, v)
        if str(v) in FIXED_COLORS:
            out[v] = FIXED_COLORS[str(v)]
        elif key in _ASSIGNED:
            out[v] = _ASSIGNED[key]
    taken = set(_ASSIGNED.values())
    for v in distinct:
        if v in out:
            continue
        here = set(out.values())
        free = [c for c in _PALETTE if c not in taken and c not in here] or \
            [c for c in _PALETTE if c not in here] or _PALETTE
        out[v] = _ASSIGNED[_color_key(column, v)] = free[0]
        taken.add(free[0])
    return out


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


def value_label(v: Any, column: str | None = None) -> str:
    """A legend entry for a value: 0.30000000000000004 -> 0.3; with its ``column``, a
    value with a unit reads ``300 GB/s``."""
    if column is not None:
        return format_value(column, v)
    if is_number(v):
        return plain_number(v)
    return str(v)
