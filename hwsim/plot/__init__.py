"""Publication plots of reports and sweeps.

Every function returns a matplotlib figure, draws in the house style of
:mod:`hwsim.plot.style` (readable 8 to 9 point fonts, units on every axis,
fonts embedded as TrueType in PDF), and writes the figure when given
``path=`` (``.pdf`` or ``.svg`` for papers, ``.png`` for slides)::

    import hwsim, hwsim.plot
    report = hwsim.simulate("workloads/bert-base.yaml", "volta", fidelity="event")
    hwsim.plot.roofline(report, path="figures/bert-roofline.pdf")
    hwsim.plot.timeline(report, ops=slice(0, 8), path="figures/bert-timeline.pdf")

    df = hwsim.sweep("sweeps/bert-seq-bw.yaml")
    hwsim.plot.pareto(df, ("latency_s", "energy_j", "dram_bytes"), hue="seq_len")
    hwsim.plot.trend(df[df.batch == 1], x="seq_len", hue="target.dram_bw_bytes_per_s")

What each shows:

- :func:`pareto`: the design points no other beats on latency, energy, DRAM bytes;
- :func:`breakdown`: stacked bars by op kind or by energy component;
- :func:`roofline`: each op placed by arithmetic intensity and achieved FLOP/s
  under the target's ceilings;
- :func:`timeline`: a Gantt chart of the event engine's units;
- :func:`compare`: the same workload across targets (or methods);
- :func:`trend`, :func:`heatmap`: a metric along one or two sweep axes;
- :func:`plot_results`: the common ones from a results file (``hwsim plot``);
  :func:`figures` yields them without writing.

Every figure says what it shows: which points (a title naming what they
share, each bar or line naming its configuration by the shortest description
that tells it apart, :func:`describe`), which machine (a roofline draws each
machine's own ceilings, :func:`machines`), and which points it compares (a
Pareto front compares only points doing the same work, :func:`work_groups`).
Axes carry base SI units with prefixed ticks (``latency (s)``, ``1.2 m``), and
a method, target or op kind keeps one colour in every panel
(:func:`category_colors`).

matplotlib runs on the non-interactive Agg backend unless a notebook has
chosen its own.
"""

from .auto import figures, plot_results
from .breakdown import breakdown, breakdown_table
from .compare import compare, compare_table
from .labels import describe, work_groups
from .pareto import pareto, pareto_mask
from .roofline import ceilings, machines, roofline
from .style import category_colors, label, paper, save
from .timeline import timeline
from .trend import heatmap, trend

__all__ = ["pareto", "pareto_mask", "breakdown", "breakdown_table", "roofline", "ceilings",
           "timeline", "compare", "compare_table", "trend", "heatmap", "plot_results", "figures",
           "machines", "describe", "work_groups", "category_colors", "label",
           "paper", "save"]
