"""GEMM micro-kernels: the register budget and the in-core time of a k-step.

A micro-kernel computes a ``rows x cols`` tile of C in vector registers. Along
``rows`` it holds ``vecs = ceil(rows / lanes)`` vectors; along ``cols`` it
broadcasts one element per column (a lane-indexed ``FMLA v.4s, a.4s, b.s[i]``),
so each k-step issues:

- ``vecs * cols`` FMAs, one per accumulator register;
- ``vecs`` vector loads of the streamed panel and ``ceil(cols / lanes)`` loads of
  the broadcast panel.

Its registers are the ``vecs * cols`` accumulators, the ``vecs`` streamed
vectors and the ``ceil(cols / lanes)`` broadcast vectors; a shape whose total
exceeds the core's 32 vector registers cannot be written (OpenBLAS's 16x4 fp32
kernel: 16 + 4 + 1 = 21). A k-step takes the longest of:

- the FMA pipes: ``vecs * cols / fma_pipes`` cycles;
- the FMA latency: every accumulator is updated once per k-step, so a kernel with
  few accumulators waits on its own dependency chain (``fma_latency`` cycles):
  the reason edge kernels (4x1, 2x4) run slower than the main one;
- the load ports: ``loads / load_ports``;
- the front end: ``(FMAs + loads + loop overhead) / issue_width``.

Each call also loads and stores its C tile and pays a loop set-up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from hwsim.errors import InputError

from .spec import ARMv8Spec

LOOP_OVERHEAD = 0.25  # branch + counter per k-step, the loop unrolled 4 times
CALL_CYCLES = 12.0  # kernel prologue/epilogue: pointers, loop counters, a branch


@dataclass(frozen=True)
class Kernel:
    """A register-blocked micro-kernel: ``rows x cols`` of C held in registers, rows in
    vectors of ``lanes`` elements."""

    rows: int
    cols: int
    lanes: int

    @property
    def vecs(self) -> int:
        return math.ceil(self.rows / self.lanes)

    @property
    def bvecs(self) -> int:
        return math.ceil(self.cols / self.lanes)

    @property
    def accumulators(self) -> int:
        return self.vecs * self.cols

    @property
    def registers(self) -> int:
        return self.accumulators + self.vecs + self.bvecs

    def name(self) -> str:
        return f"{self.rows}x{self.cols}"


def register_problem(rows: int, cols: int, lanes: int, spec: ARMv8Spec) -> str:
    """Why a ``rows x cols`` kernel cannot be written, or "" when it can."""
    k = Kernel(rows, cols, lanes)
    if k.registers <= spec.vector_registers:
        return ""
    return (f"micro-kernel {rows}x{cols} needs {k.accumulators} accumulator + {k.vecs} A + "
            f"{k.bvecs} B = {k.registers} vector registers; the core has "
            f"{spec.vector_registers}")


def checked_kernel(rows: int, cols: int, lanes: int, spec: ARMv8Spec, field: str) -> Kernel:
    """The kernel, or an :class:`InputError` naming the field and the register count.
    A kernel that fits is kept by its shape and the register budget (kernels are
    frozen: every planner of a GEMM or an attention asks for its machine's again)."""
    key = (rows, cols, lanes, spec.vector_registers)
    got = _CHECKED.get(key)
    if got is None:
        why = register_problem(rows, cols, lanes, spec)
        if why:
            raise InputError(why, field=field)
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        got = _CHECKED[key] = Kernel(rows, cols, lanes)
    return got


_CHECKED: dict = {}  # checked_kernel's kernels that fit, by shape and register budget


def kstep_cycles(k: Kernel, spec: ARMv8Spec) -> float:
    """Cycles of one k-step of ``k`` (see the module docstring)."""
    fmas = k.vecs * k.cols
    loads = k.vecs + k.bvecs
    # the largest of the four, the first of equals, as max() keeps it (without the call:
    # the kernel tables ask about a thousand times a run)
    cycles = fmas / spec.fma_pipes
    for c in (float(spec.fma_latency_cycles), loads / spec.load_ports,
              (fmas + loads + LOOP_OVERHEAD) / spec.issue_width):
        if c > cycles:
            cycles = c
    return cycles


def tile_cycles(k: Kernel, spec: ARMv8Spec) -> float:
    """Per call: load, scale (alpha, beta) and store the C tile, plus the set-up."""
    c = k.accumulators
    return c / spec.load_ports + c / spec.store_ports + c / spec.fma_pipes + CALL_CYCLES


def kernel_cycles(k: Kernel, depth: int, spec: ARMv8Spec) -> float:
    """One call of ``k`` over ``depth`` k-steps."""
    return depth * kstep_cycles(k, spec) + tile_cycles(k, spec)


def kernel_counts(k: Kernel, depth: int) -> tuple[float, float]:
    """(vector FMAs, other vector instructions) of one call, for energy."""
    fmas = k.vecs * k.cols * depth
    other = (k.vecs + k.bvecs) * depth + 3 * k.accumulators
    return fmas, other


def fastest_kernels(lanes: int, spec: ARMv8Spec, max_vecs: int = 8, max_cols: int = 16
                    ) -> list[Kernel]:
    """Every kernel an install-time generator can write: rows in whole vectors (up to
    ``max_vecs``), 1..``max_cols`` columns, within the register budget."""
    return list(_kernels(lanes, spec.vector_registers, max_vecs, max_cols))


@functools.lru_cache(maxsize=64)
def _kernels(lanes: int, registers: int, max_vecs: int, max_cols: int) -> tuple[Kernel, ...]:
    return tuple(Kernel(v * lanes, c, lanes) for v in range(1, max_vecs + 1)
                 for c in range(1, max_cols + 1)
                 if Kernel(v * lanes, c, lanes).registers <= registers)
