"""The validation set: reference cases, run against the simulator.

A case is data (YAML files in ``hwsim/validate/cases/``)::

    - name: V100 fp16 GEMM 4096^3
      kind: measured                 # measured | published | calibration (| identity)
      source: "torch-performance-test-data #140, V100-SXM2 fp16 4096: 95.73 TFLOP/s (S)"
      target: volta-v100-sxm2        # omit for graph-only metrics
      workload: {ops: [{kind: matmul, m: 4096, n: 4096, k: 4096}], dtype: fp16}  # or a path
      metric: flops_per_s
      expected: 95.73e12
      tolerance: 0.10                # relative
      note: why the tolerance is that wide

Every case says what kind of evidence it is. ``measured``: an external
measurement of a real machine, with its source. ``published``: a paper's claim,
in the paper's stated setting. ``calibration``: a measurement a constant of the
model was set from, so agreement is not evidence. ``identity``: hwsim's own
arithmetic (its constants, formulas, counts): such a case is a test and lives
in ``tests/identity_cases/``, never in the shipped set. ``hwsim validate``
groups the cases by kind and prints, per target, the mean absolute percentage
error over the measured cases, the published claims within tolerance, and the
calibration points apart. A case may list ``sensitivity:`` entries
(``{constant, set, values}``): the constants without a public source its value
depends on; ``hwsim validate --sensitivity`` reruns the case at each value.
A published claim the model does not reproduce keeps its tolerance and says
why in ``known_miss:`` (the structural cause, and the issue that tracks it): it
is printed as ``MISS`` and counted apart, never hidden by a wider tolerance; if
the model comes within tolerance, the run says the note is stale.

Metrics are the report's totals (``latency_s``, ``dram_read_bytes``, ...),
derived rates (``flops_per_s``, ``dram_bytes_per_s``), ``speedup`` (the
latency of the workload run with the case's ``baseline:`` overrides divided by
its own), or graph counts that need no target (``graph_flops``,
``graph_read_bytes``, ``graph_write_bytes``, optionally restricted with
``kinds:``, which also restricts a target's ``latency_s``, ``flops``,
``dram_read_bytes``, ``dram_write_bytes`` and ``energy_j`` to those op kinds),
and ``paper_flops_ratio`` (the token-pruning papers' FLOPs formula over the
applied schedule, :mod:`hwsim.pruning.paper`), and a target's own figures (its
``metrics(report)``, e.g. SpAtten's ``kv_bits``). ``ratio_to: unpruned``
divides a metric by its value for the same workload without pruning,
``ratio_to: baseline`` by its value for the run with the ``baseline:``
overrides. A case with ``requires: [paths]`` (data, repository-relative) is
skipped when one of them is absent. ``devices: N`` workloads run
tensor-parallel, as in ``hwsim simulate``; ``fits`` is 1 when the workload fits
the target's memory and 0 when it does not.

A published *finding* without a magnitude ("IAAT beats OpenBLAS on small
GEMMs") is a bound, not a number: ``minimum:`` and/or ``maximum:`` replace the
tolerance, so a case never checks the model against its own output.

:func:`run_cases` runs them; ``hwsim validate`` prints expected, simulated and
the error of each, and exits 1 when one is outside its tolerance.
"""

from .runner import Case, Result, format_results, load_cases, run_cases

__all__ = ["Case", "Result", "format_results", "load_cases", "run_cases"]
