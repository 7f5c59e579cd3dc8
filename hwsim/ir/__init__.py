"""hwsim's intermediate representation: the operation graph.

See :mod:`hwsim.ir.graph` for the structure, :mod:`hwsim.ir.kinds` for the
canonical op kinds and their FLOP and byte formulas, :mod:`hwsim.ir.attention` for
an attention op's shape as every target reads it, :mod:`hwsim.ir.expr` for
the size expressions of shipped templates, and :mod:`hwsim.ir.serialize` for the
file format.
"""

from .attention import AttentionShape
from .dtypes import DTYPE_BITS, dtype_bits, nbytes
from .expr import VARIABLES, Expr, fit
from .graph import TENSOR_KINDS, Graph, Op, Tensor
from .kinds import FN_FLOPS, KINDS, flops, read_bytes, write_bytes
from .serialize import SCHEMA, from_dict, load, save, to_dict
from .template import fit_template

__all__ = [
    "AttentionShape", "DTYPE_BITS", "dtype_bits", "nbytes", "VARIABLES", "Expr", "fit",
    "TENSOR_KINDS", "Graph", "Op", "Tensor", "FN_FLOPS", "KINDS", "flops", "read_bytes",
    "write_bytes", "SCHEMA", "from_dict", "load", "save", "to_dict", "fit_template",
]
