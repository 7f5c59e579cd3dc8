"""Reports: per-op, per-layer and total figures of a simulation.

A :class:`Report` wraps a pandas DataFrame with one row per op and unit-suffixed
columns (``latency_s``, ``dram_read_bytes``, ``energy_j``, ...), and derives the
per-layer aggregation, the totals, the JSON report (schema ``hwsim.report/1``,
see DESIGN.md), a CSV file and the terminal table.
"""

from .report import REPORT_SCHEMA, Report
from .table import format_table

__all__ = ["REPORT_SCHEMA", "Report", "format_table"]
