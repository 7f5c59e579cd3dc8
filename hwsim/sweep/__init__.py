"""Design-space sweeps: many what-ifs at once, streamed to Parquet.

A *sweep* takes one base workload and target and varies any of their fields
along *axes*: keep ratio x DRAM bandwidth, block sizes x sequence length,
pruning method x target. Each combination is a *point*; each point is one
:func:`hwsim.simulate` run, and becomes one row of results::

    import hwsim
    df = hwsim.sweep({
        "workload": "workloads/bert-base.yaml",
        "target": "roofline",
        "axes": {"seq_len": [128, 256, 512],
                 "target.dram_bw_bytes_per_s": {"range": [3e11, 1.2e12], "steps": 4}},
    }, "results/bert.parquet")
    df.pivot(index="seq_len", columns="target.dram_bw_bytes_per_s", values="latency_s")

or from the shell, with the same mapping in a YAML file::

    hwsim sweep sweeps/bert-seq-bw.yaml --workers 2 -o results/bert.parquet
    hwsim plot results/bert.parquet -o figures/

The parts, each a small module:

- :mod:`~hwsim.sweep.spec`: the sweep file, its axes, all problems at once;
- :mod:`~hwsim.sweep.constraints`: safe expressions between axes;
- :mod:`~hwsim.sweep.sampling`: grid, random and Latin-hypercube points;
- :mod:`~hwsim.sweep.point`: a point's identity and the worker function;
- :mod:`~hwsim.sweep.store`: the Parquet dataset that survives ``kill -9``;
- :mod:`~hwsim.sweep.progress`: the progress line;
- :mod:`~hwsim.sweep.runner`: local process pool, Dask cluster, resume.
"""

from .constraints import ConstraintError
from .point import Base, Point, prepare, run_point
from .runner import sweep
from .sampling import points
from .spec import Axis, SweepSpec, load_sweep
from .store import read_results

__all__ = ["sweep", "load_sweep", "read_results", "points", "prepare", "run_point",
           "SweepSpec", "Axis", "Base", "Point", "ConstraintError"]
