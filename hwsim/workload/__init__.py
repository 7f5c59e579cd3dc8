"""Workloads: what to simulate, read from YAML (see :mod:`hwsim.workload.schema`)."""

from .build import build_graph
from .loader import load_workload, workload_from_dict
from .overrides import apply_sets, label, parse_sets, split_target
from .schema import OP_PARAMS, Tiling, Workload

__all__ = ["build_graph", "load_workload", "workload_from_dict", "apply_sets", "label",
           "parse_sets", "split_target", "OP_PARAMS", "Tiling", "Workload"]
