"""The front door of the API: :func:`simulate`.

::

    import hwsim
    report = hwsim.simulate("workloads/llama2-7b-prefill.yaml", target="roofline")
    report.totals["latency_s"], report.ops.head()

It takes a workload (a file, a mapping or a :class:`~hwsim.workload.Workload`) and a
target, and hands the run to the simulation's pieces (:mod:`hwsim.simulate`: the
graph built, pruned, split over the devices, lowered, scheduled and priced) or, for a
whole request (``phase: generate``), to :mod:`hwsim.generation`, which runs its
forwards through the same pieces. It sits above both, so that neither imports the
other back.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .engine.events import gc_paused
from .errors import InputError
from .moe import expand as expand_moe
from .simulate import (
    FIDELITIES,
    device_graph,
    load_with_sets,
    model_graphs,
    resolve_target,
    run_graph,
)
from .targets import ResolvedTarget
from .workload import Workload
from .zoo import context_warnings

if TYPE_CHECKING:
    from .report import Report


def simulate(workload: str | os.PathLike | Workload | Mapping[str, Any],
             target: str | ResolvedTarget | None = None,
             *, sets: Iterable[str] | Mapping[str, Any] = (),
             fidelity: str = "event", baseline: bool = False) -> Report:
    """Simulate ``workload`` on ``target``.

    ``workload``: a YAML path, a :class:`Workload`, or a mapping of the same fields
    a workload file has (``{"model": "bert-base", "seq_len": 128}``), checked as a
    file is. ``target``: a target, preset or hardware YAML path, or a resolved
    target; ``None`` runs the workload's own ``target:`` field, else roofline.
    ``sets`` are overrides: ``["seq_len=4096", "target.dram_bw_bytes_per_s=1e12"]``
    or the same as a mapping; the workload's name then says which
    (:func:`hwsim.workload.overrides.label`). With ``baseline=True`` the unpruned
    graph is simulated too, as ``report.baseline``, and the report compares the two.

    Python's cyclic collector is paused for the call (:class:`~hwsim.engine.events.gc_paused`:
    a run makes no reference cycle worth a pass; the passes over the graph, the
    targets' first imports and the report came to about 3 % of a first run).
    """
    with gc_paused():
        return _simulate(workload, target, sets, fidelity, baseline)


def _simulate(workload, target, sets, fidelity: str, baseline: bool) -> Report:
    """:func:`simulate`, with the collector paused."""
    if fidelity not in FIDELITIES:
        raise InputError(f"expected one of {', '.join(FIDELITIES)}, got {fidelity!r}",
                         source="--fidelity")
    wl, target_sets = load_with_sets(workload, sets)
    resolved = resolve_target(target, wl, target_sets)
    if wl.phase == "generate":
        from .generation import simulate_generation  # noqa: PLC0415

        report = simulate_generation(wl, resolved, fidelity=fidelity, baseline=baseline)
    else:
        pruned, dense = model_graphs(wl)
        dense_flops = expand_moe(dense, wl.routing, wl.source).flops()
        report = run_graph(device_graph(pruned, wl), resolved, wl, dense_flops=dense_flops,
                           fidelity=fidelity)
        if baseline:
            report.baseline = run_graph(device_graph(dense, wl), resolved, wl,
                                        dense_flops=dense_flops, fidelity=fidelity)
    report.warnings = context_warnings(wl, report.graph.header)
    return report
