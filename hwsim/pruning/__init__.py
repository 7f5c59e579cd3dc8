"""Pruning strategies as graph passes (``Graph -> Graph``).

A workload lists pruning steps in order; each step names a ``method`` and its
parameters. This module knows every method's name and the parameters it takes,
and checks them when a workload is loaded (a wrong method name or parameter is
an error naming the field, never a silent no-op). Parameters that mean the same
thing keep one name everywhere: ``keep`` (a fraction, or a list with one
fraction per layer), ``at_layer``, ``segment``, ``layers``.

The passes are applied by :func:`apply`.
"""

from .registry import METHODS, MethodSpec, check_step
from .apply import apply

__all__ = ["METHODS", "MethodSpec", "check_step", "apply"]
