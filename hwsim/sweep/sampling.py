"""From axes to points: the grid, random draws, Latin hypercubes.

:func:`points` turns a :class:`~hwsim.sweep.spec.SweepSpec` into a list of
points, each a dict axis name -> value, in a fixed order:

- ``grid``: the product of the axes' values, first axis slowest, like nested
  ``for`` loops written in the order of the file;
- ``random``: every axis drawn independently and uniformly (log-uniformly for a
  ``log`` range; a list or stepped range as equally likely categories);
- ``lhs``: a Latin hypercube of ``samples`` points: each axis is cut into
  ``samples`` equal strata and every stratum holds exactly one point, with the
  strata of different axes paired at random. It covers each axis evenly with
  far fewer points than a grid. The hypercube is SciPy's
  (:class:`scipy.stats.qmc.LatinHypercube`, one dimension per axis in the
  file's order, a uniform point inside each stratum), mapped onto each axis
  like a random draw.

Random and lhs draws come from NumPy's PCG64 generator seeded with the sweep's
``seed`` (the hypercube draws from it too), so the same file always gives the
same points, which is what lets an interrupted sweep resume. Points failing a
constraint are dropped; random and lhs modes draw again until ``samples``
distinct points pass (an error when none does; fewer points when the categories
hold fewer distinct combinations).
Duplicate points (a random draw of categories can repeat) are kept once.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from ..errors import InputError
from .constraints import ConstraintError
from .spec import SweepSpec

_MAX_ROUNDS = 50


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's points, constraints applied, duplicates removed, in a fixed order."""
    if spec.mode == "grid":
        names = spec.axis_names
        drawn = (dict(zip(names, combo)) for combo in
                 itertools.product(*(a.values for a in spec.axes)))
        out = _unique(p for p in drawn if _accept(spec, p))
        if not out:
            raise InputError("no point of the grid satisfies the constraints",
                             source=spec.source, field="constraints")
        return out
    import numpy as np  # noqa: PLC0415 (loaded on first need)

    rng = np.random.Generator(np.random.PCG64(spec.seed))
    if spec.mode == "lhs":
        from scipy.stats import qmc  # noqa: PLC0415 (loaded on first need)

        cube = qmc.LatinHypercube(d=len(spec.axes), rng=rng)

        def draw(n: int) -> np.ndarray:  # n x axes, each column stratified
            return cube.random(n)
    else:
        def draw(n: int) -> np.ndarray:  # n x axes, independent and uniform
            return rng.random((len(spec.axes), n)).T
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(_MAX_ROUNDS):
        for p in _points_at(spec, draw(spec.samples)):
            key = _key(p)
            if key not in seen and _accept(spec, p):
                seen.add(key)
                out.append(p)
                if len(out) == spec.samples:
                    return out
    if not out:
        raise InputError("no drawn point satisfies the constraints", source=spec.source,
                         field="constraints")
    # the categories and constraints leave fewer distinct points than asked for
    return out


def _points_at(spec: SweepSpec, unit: np.ndarray) -> list[dict[str, Any]]:
    """Points from a sample of the unit cube (one row per point, one column per axis)."""
    cols = [[axis.value_at(float(x)) for x in unit[:, i]] for i, axis in enumerate(spec.axes)]
    return [dict(zip(spec.axis_names, row)) for row in zip(*cols)]


def _accept(spec: SweepSpec, point: dict[str, Any]) -> bool:
    for c in spec.constraints:
        try:
            if not c(point):
                return False
        except ConstraintError as e:
            i = spec.constraints.index(c)
            raise InputError(f"{c.text!r} {e}", source=spec.source,
                             field=f"constraints.{i}") from None
    return True


def _key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


def _unique(pts) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for p in pts:
        k = _key(p)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out
