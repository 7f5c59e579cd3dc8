"""The ARMv8 target: lowering by op kind, the DRAM pool, energy, headline, breakdown."""

from __future__ import annotations

from pathlib import Path

from hwsim.energy import EnergyTable
from hwsim.engine import Accumulator, Task, analytical_latency
from hwsim.errors import InputError, UnsupportedOpError
from hwsim.ir.kinds import executed_flops as counted_executed_flops
from hwsim.onchip import NONE, Carry, kept_write_bytes, onchip_read_bytes
from hwsim.targets import Target

from .attention import attention_plan
from .attention import executed_flops as attention_executed_flops
from .ecm import Plan, emit, l3_s, summarize_plan
from .energy import energy_table
from .gemm import Gemm, plan_gemm
from .spec import DRAM_POOL, INT_DTYPES, ARMv8Spec, Machine
from .vector import vector_plan

VECTOR_KINDS = ("softmax", "layernorm", "rmsnorm", "elementwise", "reduce", "rope", "topk",
                "gather", "embedding", "concat", "kv_write")
# the kinds whose plans read each input whole from DRAM, so one can come from the last
# level instead (hwsim.onchip); gathers read rows, attention its own blocks
CARRY_KINDS = ("matmul", "softmax", "layernorm", "rmsnorm", "elementwise", "rope")


class ARMv8Target(Target):
    name = "armv8"
    description = ("ARMv8 CPU socket: NEON cores with private L1/L2, a shared L3 and DDR "
                   "channels; ECM kernel model, OpenBLAS / IAAT / AutoTSMM GEMM")
    spec_class = ARMv8Spec
    default_preset = "armv8-kunpeng920"
    presets_dir = Path(__file__).parent / "presets"
    memory_name = "DRAM"

    def __init__(self):
        self._machine: tuple[ARMv8Spec, Machine, dict] | None = None
        self._last: tuple | None = None
        self._last_carried: tuple | None = None
        self._last_terms: tuple | None = None  # (plan, machine, its _terms)

    def machine(self, spec: ARMv8Spec, tiling=None) -> Machine:
        """The machine of ``spec``, with the workload's thread cap and placement."""
        # kept while the spec is equal (a sweep's points resolve equal specs anew): the
        # threads' stream rates are solved once
        if self._machine is None or (self._machine[0] is not spec and self._machine[0] != spec):
            self._machine = (spec, Machine(spec), {})
        base, runs = self._machine[1], self._machine[2]
        key = (getattr(tiling, "threads", 0), getattr(tiling, "placement", "spread"))
        if key not in runs:
            runs[key] = base.for_run(*key)
        return runs[key]

    def pools(self, spec: ARMv8Spec) -> dict[str, int]:
        # every thread's DRAM transfer is marked on the `dram` pool; its rate already
        # carries the queueing of all the op's threads (memory.stream_rates), so the
        # pool has a slot for each core and never makes a transfer wait twice
        return {DRAM_POOL: spec.cores}

    # ------------------------------------------------------------------ lowering
    def plan(self, op, graph, spec: ARMv8Spec, tiling=None) -> Plan | None:
        """How ``op`` runs: threads, per-thread ECM steps, kernel (None for a view)."""
        mach = self.machine(spec, tiling)
        kind = op.kind
        strategy = getattr(tiling, "gemm", "auto") if tiling is not None else "auto"
        if kind == "view":
            return None
        if kind == "matmul":
            plan = plan_gemm(self._gemm(op, graph, mach), mach, strategy, mach.cores)
            extra = sum(graph.stored_bytes(i) for i in op.inputs[2:])  # a bias
            if extra:  # read cold, each thread its share, with its first tile
                i = next((i for i, st in enumerate(plan.steps) if st.dram_read), 0)
                # (a copy: the steps are the kept plan's, shared by every op of the GEMM)
                first = plan.steps[i] = plan.steps[i].scaled(1.0)
                first.read("dram", extra / plan.threads)
            return plan
        if kind == "attention":
            return attention_plan(op, graph, mach, tiling, strategy)
        if kind in VECTOR_KINDS:
            return vector_plan(op, graph, mach)
        raise UnsupportedOpError(self.name, kind, op.line(graph) + (
            " (one socket: tensor-parallel all-reduce across sockets is not modelled)"
            if kind == "allreduce" else ""))

    def lower(self, op, graph, spec: ARMv8Spec, tiling=None) -> list[Task]:
        plan = self._plan_of(op, graph, spec, tiling)
        if plan is None:
            return []
        return emit(plan, self.machine(spec, tiling), op.name or op.kind)

    def lower_summary(self, op, graph, spec: ARMv8Spec, tiling=None, carry=None):
        """The ``analytical`` fidelity's reading of the tasks, without them: the sums
        of the plan's tasks taken from its steps (:func:`.ecm.summarize_plan`), each in
        the order :func:`hwsim.engine.summarize` takes them over :meth:`lower`'s (or
        :meth:`lower_carried`'s) tasks, so the same summary to the last bit (a test
        holds the two equal)."""
        if carry and not self.carries(op):
            raise ValueError(f"armv8 does not carry the inputs of a {op.kind} op on chip")
        plan = (self._carried_plan(op, graph, spec, tiling, carry) if carry
                else self._plan_of(op, graph, spec, tiling))
        if plan is None:
            return Accumulator().summary(self.pools(spec)), 0
        mach = self.machine(spec, tiling)
        terms: list = []  # (kept for the op's line, which follows: describe)
        got = summarize_plan(plan, mach, self.pools(spec), terms)
        self._last_terms = (plan, mach, terms[0])
        return got

    # ------------------------------------------------------------------ on-chip state
    def onchip_capacity_bytes(self, spec: ARMv8Spec) -> float:
        """Half the last-level cache (the shared L3, or all the L2s of a chip without
        one) carries tensors between ops; the other half is the op's own (the half
        :func:`.placement.resident` and :func:`.placement.scratch` count on)."""
        return self.machine(spec).llc_bytes / 2

    def carries(self, op) -> bool:
        """GEMMs and the vector kernels that read each input whole
        (:data:`CARRY_KINDS`)."""
        return op.kind in CARRY_KINDS

    def lower_carried(self, op, graph, spec: ARMv8Spec, tiling, carry: Carry) -> list[Task]:
        if not carry:
            return self.lower(op, graph, spec, tiling)
        if not self.carries(op):
            raise ValueError(f"armv8 does not carry the inputs of a {op.kind} op on chip")
        return emit(self._carried_plan(op, graph, spec, tiling, carry),
                    self.machine(spec, tiling), op.name or op.kind)

    def _carried_plan(self, op, graph, spec, tiling, carry: Carry) -> Plan | None:
        plan = self._plan_of(op, graph, spec, tiling)
        if plan is None or not carry:
            return plan
        # kept for the op just lowered (its description asks again: the same op, graph
        # and carry objects carry the same bytes, not counted again)
        last = self._last_carried
        if (last is not None and last[0] is plan and last[4] is op and last[5] is carry
                and last[6] is graph):
            return last[3]
        read, write = onchip_read_bytes(op, graph, carry), kept_write_bytes(op, graph, carry)
        if last is None or last[0] is not plan or last[1] != read or last[2] != write:
            last = (plan, read, write, carried(plan, read, write))
        self._last_carried = (*last[:4], op, carry, graph)
        return last[3]

    def _plan_of(self, op, graph, spec, tiling) -> Plan | None:
        """:meth:`plan`, remembered for the op just lowered (``describe`` follows it).
        The same op object asked again, on the same graph, spec and tiling and with
        the same attributes, is known without building its key."""
        last = self._last
        if (last is not None and last[3] is op and last[4] is graph and last[1] is spec
                and last[5] is tiling and last[6] == op.attrs):
            return last[2]
        t = graph.tensors
        key = (op.kind, tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
               tuple((t[i].shape, t[i].dtype, t[i].kind) for i in (*op.inputs, *op.outputs)),
               tiling)
        if last is None or last[0] != key or last[1] is not spec:
            plan = self.plan(op, graph, spec, tiling)
        else:
            plan = last[2]
        self._last = (key, spec, plan, op, graph, tiling, dict(op.attrs))
        return plan

    def executed_flops(self, op, graph, spec: ARMv8Spec, tiling=None) -> int:
        """FLOPs the kernels execute: an attention computes whole tiles of its own
        blocks (``block_q`` rows, ``block_kv`` keys) and skips those a causal or
        sliding-window mask hides entirely; other ops execute their counted FLOPs."""
        if op.kind != "attention":
            # (Target.executed_flops' exact count, its import made once here: it is
            # asked for every op)
            return counted_executed_flops(op)
        return attention_executed_flops(self._plan_of(op, graph, spec, tiling))

    def describe(self, op, graph, spec: ARMv8Spec, tiling=None, carry: Carry = NONE) -> str:
        """One line for reports: strategy, kernel, threads and the per-thread ECM terms
        (in-core, L1 ports, L2, L3, page-table walks when there are any, DRAM at its
        share of the socket's bandwidth); ``carry``: what it finds in the last level."""
        plan = self._carried_plan(op, graph, spec, tiling, carry or NONE)
        if plan is None:
            return ""
        mach = self.machine(spec, tiling)
        last = self._last_terms  # (the terms lower_summary just summed, for this plan)
        t = (last[2] if last is not None and last[0] is plan and last[1] is mach
             else self._terms(plan, mach))
        what = " ".join(x for x in (plan.strategy, plan.kernel) if x)
        return (f"{what} x{plan.threads}: core {_us(t['in_core_s'])} L1 {_us(t['l1_s'])} "
                f"L2 {_us(t['l2_s'])} L3 {_us(t['l3_s'])} "
                + (f"TLB {_us(t['tlb_s'])} " if t["tlb_s"] else "")
                + f"DRAM {_us(t['dram_s'])}")

    def _gemm(self, op, graph, mach: Machine) -> Gemm:
        a = op.attrs
        t = graph.tensors
        ta, tb = t[op.inputs[0]], t[op.inputs[1]]
        dtype = ta.dtype
        if dtype in INT_DTYPES:
            raise InputError(f"dtype {dtype!r}: integer GEMM is not modelled on "
                             f"{mach.spec.core_name}; needed by {op.line(graph)}", field="dtype")
        if not mach.computes(dtype):  # (the op's line only for the error)
            mach.check_dtype(dtype, op.line(graph))
        b, m, n, k = a["batch"], a["m"], a["n"], a["k"]
        # an operand without the batch dimension is one matrix every batch entry uses
        return Gemm(b, m, n, k, dtype, a_broadcast=b > 1 and ta.numel == m * k,
                    b_broadcast=b > 1 and tb.numel == k * n)

    # ------------------------------------------------------------------ reports
    def breakdown(self, op, graph, spec: ARMv8Spec, tiling=None) -> dict:
        """The ECM terms of ``op`` for one thread, in seconds, and how it ran.

        ``in_core_s`` (FP pipes, of which ``pack_s`` packing), ``l1_s`` (load/store
        ports), ``l2_s``, ``l3_s`` (cache transfers), ``tlb_s`` (page-table walks),
        ``dram_s`` (its DRAM bytes at
        its share of the socket's bandwidth), ``sync_s`` (fork, barriers, join),
        ``call_s`` (the library call), and ``latency_s`` (the analytical schedule of
        the op's tasks). The terms overlap (ECM), so they do not add up to the latency.
        """
        mach = self.machine(spec, tiling)
        plan = self.plan(op, graph, spec, tiling)
        if plan is None:
            return {"strategy": "", "threads": 0, "kernel": "", "in_core_s": 0.0,
                    "pack_s": 0.0, "l1_s": 0.0, "l2_s": 0.0, "l3_s": 0.0, "tlb_s": 0.0,
                    "dram_s": 0.0,
                    "sync_s": 0.0, "call_s": 0.0, "latency_s": 0.0, "detail": {}}
        n = plan.threads
        barriers = sum(1 for s in plan.steps[:-1] if s.barrier)
        tasks = emit(plan, mach, op.name or op.kind)
        return {"strategy": plan.strategy, "threads": n, "kernel": plan.kernel,
                **self._terms(plan, mach),
                "sync_s": mach.fork_s(n) + (barriers + 1) * mach.barrier_s(n),
                "call_s": plan.serial_s,
                "latency_s": analytical_latency(tasks, self.pools(spec)),
                "detail": plan.detail}

    @staticmethod
    def _terms(plan: Plan, mach: Machine) -> dict[str, float]:
        """Per-thread ECM terms summed over the plan's steps, in seconds."""
        n = plan.threads
        mach = mach.with_writes(plan.write_share)
        rate = mach.slowest_rate(n)  # the slowest thread's, all streaming
        # the terms of times(), inline (the same floats), each summed in step order
        cycle_s, l2_bw, l3_bw, walk_s = mach.cycle_s, mach.l2_bw, mach.l3_bw, \
            mach.spec.tlb_walk_s
        l3_shared = mach.l3_rate(n)  # the L3 hits' rate among the op's threads (ecm.l3_s)
        core = pack = l1 = l2 = l3 = tlb = dram = 0.0
        for step in plan.steps:
            in_core = step.arith_cycles * cycle_s
            core += in_core
            if step.label.startswith(("pack", "pre-pack")):
                pack += in_core
            l1 += step.port_cycles * cycle_s
            l2 += step.l2_bytes / l2_bw
            l3 += (step.l3_bytes / l3_bw if l3_shared == l3_bw
                   else l3_s(step, l3_bw, l3_shared))
            tlb += step.tlb_walks * walk_s
            dram += (step.dram_read + step.dram_write) / rate
        return {"in_core_s": core, "pack_s": pack, "l1_s": l1, "l2_s": l2, "l3_s": l3,
                "tlb_s": tlb, "dram_s": dram}

    def peak_flops_per_s(self, spec: ARMv8Spec, dtype: str) -> float:
        return self.machine(spec).peak_flops(dtype) * spec.cores

    def peak_dram_bw_bytes_per_s(self, spec: ARMv8Spec) -> float:
        return float(self.machine(spec).dram_peak)

    def energy_table(self, spec: ARMv8Spec) -> EnergyTable:
        return energy_table(spec)

    def headline(self, spec: ARMv8Spec) -> str:
        mach = self.machine(spec)
        core = mach.peak_flops("fp32")
        l3 = f"L3 {spec.l3_bytes / 2**20:.0f} MiB" if spec.l3_bytes else "no L3"
        return (f"{spec.cores} x {spec.core_name} at {spec.clock_hz / 1e9:.2f} GHz; fp32 "
                f"{core / 1e9:.1f} GFLOP/s per core, {core * spec.cores / 1e12:.2f} TFLOP/s; "
                f"L1D {spec.l1_bytes // 1024} KiB, L2 {spec.l2_bytes // 1024} KiB, {l3}; "
                f"DDR {mach.dram_peak / 1e9:.0f} GB/s ({mach.dram_bw / 1e9:.0f} sustained)")


def carried(plan: Plan, read_bytes: float, write_bytes: float) -> Plan:
    """``plan`` with ``read_bytes`` of its DRAM reads found in the last-level cache
    instead, taken from its first DRAM reads on, and ``write_bytes`` of its DRAM writes
    left resting there, taken from its last writes back (all threads' bytes; each
    thread's share from its steps). The bytes still cross L1, L2 and L3 as before
    (:meth:`.ecm.Step.read` counts a DRAM read at every level); only the DRAM transfer
    goes. A step that changes is a copy (a plan may be cached and shared); the others
    are the plan's own, shared (steps are not changed once planned)."""
    original = plan.steps
    steps = list(original)
    n = len(steps)
    for amount, field, order in ((read_bytes, "dram_read", range(n)),
                                 (write_bytes, "dram_write", range(n - 1, -1, -1))):
        need = amount / plan.threads
        for i in order:
            if need <= 0:
                break
            s = steps[i]
            have = getattr(s, field)
            take = need if need < have else have  # (min(have, need), without the call)
            if take:
                if s is original[i]:
                    s = steps[i] = s.scaled(1.0)  # (a copy: x 1.0 is the same float)
                setattr(s, field, have - take)
            need -= take
    # (the plan with these steps: its fields one by one, not dataclasses.replace, which
    # looks them up anew for every op carried)
    return Plan(plan.strategy, plan.threads, steps, plan.dtype, plan.serial_s, plan.kernel,
                plan.detail, plan.runs, plan.write_share)


def _us(seconds: float) -> str:
    """A duration in the unit that keeps it short (ns, µs, ms, s)."""
    # (the units one by one, not a loop over them: five durations an op's line)
    if seconds >= 1.0:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds / 1e-3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds / 1e-6:.3g} µs"
    return f"{seconds / 1e-9:.3g} ns" if seconds else "0"


TARGET = ARMv8Target()
