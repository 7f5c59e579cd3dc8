"""Size expressions: how a dimension depends on the workload's size.

A shipped trace is a *template*: every dimension is an integer or a
polynomial of the workload variables ``batch``, ``seq_len`` and ``kv_len`` with
integer coefficients, multilinear (no variable squared), for example::

    4096                       # hidden size
    kv_len + seq_len           # keys seen by a decode step
    batch*seq_len              # rows of a projection: (batch, seq) flattened

Multilinear rather than affine because frameworks flatten ``(batch, seq)`` into
one GEMM dimension, a product. Expressions are parsed from and printed to plain
strings (no ``eval``), and :func:`fit` recovers one from the values a dimension
takes in traces at several sizes.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Mapping, Union

VARIABLES = ("batch", "seq_len", "kv_len")

Monomial = tuple[str, ...]  # sorted variable names; () is the constant term


class Expr:
    """An integer multilinear polynomial of the workload variables. Immutable."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Mapping[Monomial, int]):
        clean = {tuple(sorted(m)): int(c) for m, c in terms.items() if c}
        self.terms: tuple[tuple[Monomial, int], ...] = tuple(
            sorted(clean.items(), key=lambda t: (len(t[0]), t[0])))
        self._hash = hash(self.terms)

    # construction -----------------------------------------------------------
    @classmethod
    def var(cls, name: str) -> "Expr":
        if name not in VARIABLES:
            raise ValueError(f"unknown size variable {name!r} (known: {', '.join(VARIABLES)})")
        return cls({(name,): 1})

    @classmethod
    def parse(cls, text: str) -> "Expr":
        """Parse ``"2*batch*seq_len + 4096 - kv_len"``."""
        src = text.replace(" ", "")
        if not src:
            raise ValueError("empty size expression")
        terms: dict[Monomial, int] = {}
        i, sign = 0, 1
        if src[0] in "+-":
            sign = -1 if src[0] == "-" else 1
            i = 1
        for raw in _split_terms(src[i:], sign):
            s, body = raw
            coef, names = 1, []
            for factor in body.split("*"):
                if factor.isdigit():
                    coef *= int(factor)
                elif factor in VARIABLES:
                    names.append(factor)
                else:
                    raise ValueError(f"bad factor {factor!r} in size expression {text!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"size expression {text!r} is not multilinear")
            mono = tuple(sorted(names))
            terms[mono] = terms.get(mono, 0) + s * coef
        return cls(terms)

    # use ----------------------------------------------------------------------
    def evaluate(self, env: Mapping[str, int]) -> int:
        total = 0
        for mono, coef in self.terms:
            v = coef
            for name in mono:
                v *= env[name]
            total += v
        return total

    @property
    def variables(self) -> set[str]:
        return {n for mono, _ in self.terms for n in mono}

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for mono, coef in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            if not mono:
                body = str(abs(coef))
            elif abs(coef) == 1:
                body = "*".join(mono)
            else:
                body = f"{abs(coef)}*" + "*".join(mono)
            parts.append(("-" if coef < 0 else "+", body))
        out = ("-" if parts[0][0] == "-" else "") + parts[0][1]
        for sgn, body in parts[1:]:
            out += f" {sgn} {body}"
        return out

    def __repr__(self) -> str:
        return f"Expr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash


Size = Union[int, Expr]


def _split_terms(src: str, first_sign: int):
    out, sign, start = [], first_sign, 0
    for j, ch in enumerate(src):
        if ch in "+-":
            out.append((sign, src[start:j]))
            sign = -1 if ch == "-" else 1
            start = j + 1
    out.append((sign, src[start:]))
    for _, body in out:
        if not body:
            raise ValueError(f"malformed size expression near {src!r}")
    return out


def evaluate(value: Size, env: Mapping[str, int]) -> int:
    """Evaluate an int or :class:`Expr` in ``env``."""
    return value.evaluate(env) if isinstance(value, Expr) else value


def simplify(expr: Expr) -> Size:
    """An expression with only a constant term becomes a plain int."""
    if not expr.terms:
        return 0
    if len(expr.terms) == 1 and expr.terms[0][0] == ():
        return expr.terms[0][1]
    return expr


def basis(variables: tuple[str, ...]) -> list[Monomial]:
    """All multilinear monomials of ``variables``, constant first."""
    out: list[Monomial] = []
    for r in range(len(variables) + 1):
        out.extend(tuple(sorted(c)) for c in itertools.combinations(variables, r))
    return out


def fit(points: list[Mapping[str, int]], values: list[int],
        variables: tuple[str, ...]) -> Size:
    """The integer multilinear polynomial taking ``values`` at ``points``.

    ``points`` must determine it (at least one point per monomial of
    ``variables``, in general position, e.g. a 2x2 grid for two variables).
    Raises ``ValueError`` when no integer polynomial reproduces every value.
    """
    if len(set(values)) == 1:
        return values[0]
    monos = basis(variables)
    rows = [[_mono_value(m, p) for m in monos] for p in points]
    coefs = _solve_exact(rows, [Fraction(v) for v in values])
    if coefs is None or any(c.denominator != 1 for c in coefs):
        raise ValueError(f"values {values} at {points} are not an integer multilinear "
                         f"polynomial of {variables}")
    return simplify(Expr({m: int(c) for m, c in zip(monos, coefs)}))


def _mono_value(mono: Monomial, point: Mapping[str, int]) -> int:
    v = 1
    for name in mono:
        v *= point[name]
    return v


def _solve_exact(rows: list[list[int]], rhs: list[Fraction]) -> list[Fraction] | None:
    """Least-squares-free exact solve: Gaussian elimination over rationals.

    Overdetermined systems are solved on a full-rank subset and the rest must
    agree; returns ``None`` when the system is inconsistent or rank-deficient.
    """
    n_var = len(rows[0])
    aug = [[Fraction(x) for x in r] + [b] for r, b in zip(rows, rhs)]
    pivot_row = 0
    pivots = []
    for col in range(n_var):
        sel = next((r for r in range(pivot_row, len(aug)) if aug[r][col] != 0), None)
        if sel is None:
            return None  # rank-deficient: the points do not determine this monomial
        aug[pivot_row], aug[sel] = aug[sel], aug[pivot_row]
        piv = aug[pivot_row][col]
        aug[pivot_row] = [x / piv for x in aug[pivot_row]]
        for r in range(len(aug)):
            if r != pivot_row and aug[r][col] != 0:
                f = aug[r][col]
                aug[r] = [a - f * b for a, b in zip(aug[r], aug[pivot_row])]
        pivots.append(col)
        pivot_row += 1
    for r in range(pivot_row, len(aug)):
        if aug[r][-1] != 0:
            return None
    return [aug[i][-1] for i in range(n_var)]
