"""hwsim: a hardware simulator and co-design explorer for attention and pruning.

Trace a PyTorch model into an operation graph (:mod:`hwsim.trace`, needs torch),
describe a workload in YAML (:mod:`hwsim.workload`), and simulate it on a target
(:mod:`hwsim.targets`, :mod:`accelerators`) to get latency, DRAM traffic and
energy per op, per layer and in total (:mod:`hwsim.report`)::

    import hwsim
    report = hwsim.simulate("workloads/bert-base.yaml", target="roofline")
    print(report.table())

Design-space sweeps (:func:`sweep`, :mod:`hwsim.sweep`) run many such
simulations and stream one row per point to Parquet; :mod:`hwsim.plot` draws
them for papers.

The core never imports torch.
"""

from .errors import HwsimError, InputError, UnsupportedOpError
from .ir import Graph, Op, Tensor, load, save
from .report import Report
from .simulate import run_graph, simulate
from .sweep import sweep
from .targets import registry, resolve
from .workload import Workload, build_graph, load_workload

__version__ = "0.1.0"

__all__ = ["HwsimError", "InputError", "UnsupportedOpError", "Graph", "Op", "Tensor", "load",
           "save", "Report", "run_graph", "simulate", "registry", "resolve", "Workload",
           "build_graph", "load_workload", "sweep", "__version__"]
