"""hwsim: a hardware simulator and co-design explorer for attention and pruning.

Trace a PyTorch model into an operation graph (:mod:`hwsim.trace`, needs torch),
describe a workload in YAML (:mod:`hwsim.workload`), and simulate it on a target
(:mod:`hwsim.targets`, :mod:`hwsim.accelerators`) to get latency, DRAM traffic and
energy per op, per layer and in total (:mod:`hwsim.report`)::

    import hwsim
    report = hwsim.simulate("workloads/bert-base.yaml", target="roofline")
    print(report.table())

Design-space sweeps (:func:`sweep`, :mod:`hwsim.sweep`) run many such
simulations and stream one row per point to Parquet; :mod:`hwsim.plot` draws
them for papers.

The core never imports torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING

# the front door, a function named as a module (hwsim.simulate, the pieces it runs):
# bound here after that module's import, so that ``hwsim.simulate`` is the function
from .api import simulate
from .errors import HwsimError, InputError, UnsupportedOpError
from .simulate import run_graph
from .sweep import sweep

if TYPE_CHECKING:
    from .ir import Graph, Op, Tensor, load, save
    from .report import Report
    from .targets import registry, resolve
    from .workload import Workload, build_graph, load_workload

# The API's names, imported when first used (PEP 562): ``import hwsim`` stays quick,
# and pandas (reports), the sweep machinery and the targets load on first need.
_LAZY = {"Graph": "ir", "Op": "ir", "Tensor": "ir", "load": "ir", "save": "ir",
         "Report": "report", "registry": "targets", "resolve": "targets",
         "Workload": "workload", "build_graph": "workload", "load_workload": "workload"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsim' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = ["HwsimError", "InputError", "UnsupportedOpError", "Graph", "Op", "Tensor", "load",
           "save", "Report", "run_graph", "simulate", "registry", "resolve", "Workload",
           "build_graph", "load_workload", "sweep", "__version__"]
