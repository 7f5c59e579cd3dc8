"""Reports: per-op, per-layer and total figures of a simulation.

A :class:`Report` wraps a pandas DataFrame with one row per op and unit-suffixed
columns (``latency_s``, ``dram_read_bytes``, ``energy_j``, ...), and derives the
per-layer aggregation, the totals, the JSON report (schema ``hwsim.report/1``,
see DESIGN.md), a CSV file, the terminal table (:mod:`.table`, identical ops
grouped by :mod:`.groups`), a self-contained HTML page (:mod:`.html`, also what a
Jupyter cell shows) and a Chrome trace (:mod:`.chrome`).

:func:`format_table` is the one plain-text table formatter; any table hwsim prints
can be made with it.
"""

from .report import REPORT_SCHEMA, Report
from .table import format_report, format_table

__all__ = ["REPORT_SCHEMA", "Report", "format_report", "format_table"]
