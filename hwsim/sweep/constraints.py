"""Constraints between axes: small, safe expressions, never ``eval``.

A sweep's ``constraints:`` keep only the points that satisfy every expression::

    constraints:
      - "block_q <= block_kv"                   # last part of an axis name
      - "tiling.block_kv <= ops.0.kv_len"        # or the full dotted name
      - "keep * topk_parallelism >= 1"
      - "method != 'fastv' or at_layer < 4"

An expression is parsed with :mod:`ast` and interpreted by a walker that knows
a short list of node types: numbers, strings, ``True``/``False``/``None``,
axis names, arithmetic (``+ - * / // % **``), comparisons (chained too, and
``in``/``not in`` a literal list or tuple), ``and``/``or``/``not``,
``x if cond else y``, and the functions ``min``, ``max``, ``abs``, ``round``,
``log2``, ``sqrt``. Anything else (attribute access, calls of other names,
subscripts, comprehensions, lambdas) is rejected when the sweep file is read,
so a sweep file can never run code. Arithmetic applies to numbers only and
exponents are bounded, so no expression can allocate a huge string or integer.

Axis names hold dots (``pruning.0.keep``), which Python would read as
attribute access, so before parsing each axis name is replaced by a plain
identifier; its last part (``keep``) may be used instead when no other axis
ends the same way.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_FUNCS = {"min": min, "max": max, "abs": abs, "round": round, "log2": math.log2,
          "sqrt": math.sqrt}
_MAX_EXPONENT = 64


class ConstraintError(ValueError):
    """An expression outside the grammar, or one that failed on a point."""


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: its text and the tree the walker interprets."""

    text: str
    tree: ast.Expression
    names: Mapping[str, str]  # identifier in the tree -> axis name

    def __call__(self, values: Mapping[str, Any]) -> bool:
        """Whether the point ``values`` (axis name -> value) satisfies the constraint."""
        env = {ident: values[axis] for ident, axis in self.names.items()}
        try:
            return bool(_eval(self.tree.body, env))
        except ConstraintError:
            raise
        except (ArithmeticError, TypeError, ValueError) as e:
            raise ConstraintError(f"failed on {dict(values)}: {type(e).__name__}: {e}") from None


def aliases(axis_names: Sequence[str]) -> dict[str, str]:
    """Names an expression may use -> axis name: full names, and unique last parts."""
    out = {name: name for name in axis_names}
    last: dict[str, list[str]] = {}
    for name in axis_names:
        last.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    for short, full in last.items():
        if len(full) == 1 and short not in out and short.isidentifier():
            out[short] = full[0]
    return out


def parse(text: str, axis_names: Sequence[str]) -> Constraint:
    """Parse ``text`` over ``axis_names``; :class:`ConstraintError` says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConstraintError(f"expected an expression such as 'block_q <= block_kv', "
                              f"got {text!r}")
    names = aliases(axis_names)
    # longest names first, so `pruning.0.keep` is replaced before `keep`
    ordered = sorted(names, key=len, reverse=True)
    idents: dict[str, str] = {}
    pattern = re.compile("|".join(rf"(?<![\w.]){re.escape(n)}(?![\w.])" for n in ordered))

    def sub(m: re.Match) -> str:
        axis = names[m.group(0)]
        ident = idents.setdefault(axis, f"_axis{len(idents)}")
        return ident

    source = pattern.sub(sub, text) if ordered else text
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ConstraintError(f"not an expression: {e.msg}") from None
    mapping = {ident: axis for axis, ident in idents.items()}
    _check(tree.body, mapping, names)
    return Constraint(text, tree, mapping)


def _check(node: ast.AST, idents: Mapping[str, str], names: Mapping[str, str]) -> None:
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ConstraintError(f"constant {node.value!r} is not a number or string")
    elif isinstance(node, ast.Name):
        if node.id not in idents and node.id not in ("True", "False", "None"):
            known = ", ".join(sorted(names)) or "none"
            raise ConstraintError(f"unknown name {node.id!r} (axes: {known})")
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left, idents, names)
        _check(node.right, idents, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        _check(node.operand, idents, names)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, idents, names)
    elif isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        for v in (node.left, *node.comparators):
            _check(v, idents, names)
    elif isinstance(node, ast.IfExp):
        for v in (node.test, node.body, node.orelse):
            _check(v, idents, names)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for v in node.elts:
            _check(v, idents, names)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id in _FUNCS and not node.keywords):
        for v in node.args:
            _check(v, idents, names)
    else:
        what = type(node).__name__
        if isinstance(node, ast.Call):
            what = "a call of anything but " + ", ".join(_FUNCS)
        elif isinstance(node, ast.Attribute):
            what = f"attribute access (.{node.attr}; is an axis name misspelt?)"
        raise ConstraintError(f"{what} is not allowed in a constraint")


def _number(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConstraintError(f"arithmetic needs numbers, got {v!r}")
    return v


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        return {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _number(_eval(node.left, env)), _number(_eval(node.right, env))
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ConstraintError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not v
        v = _number(v)
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, env) for v in node.values)
        return any(_eval(v, env) for v in node.values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, env) else node.orelse, env)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(v, env) for v in node.elts)
    if isinstance(node, ast.Call):
        return _FUNCS[node.func.id](*(_number(_eval(a, env)) for a in node.args))
    raise ConstraintError(f"{type(node).__name__} is not allowed")  # pragma: no cover
