"""The Ascend target: lowering by op kind, pools, energy table, headline."""

from __future__ import annotations

from pathlib import Path

from hwsim.energy import EnergyTable
from hwsim.engine import Accumulator, Task
from hwsim.engine.events import gc_paused
from hwsim.errors import UnsupportedOpError
from hwsim.onchip import NONE, Carry
from hwsim.targets import Target

from . import attention, comm, memory, vector
from .chip import L2, Builder, Chip, cdiv
from .energy import energy_table
from .gemm import emit_gemm, search
from .spec import AscendSpec

# the kinds whose lowering reads each input by name through the L2 model, so one an
# earlier op left there can be read from it (hwsim.onchip)
CARRY_KINDS = ("matmul", "softmax", "layernorm", "rmsnorm", "elementwise", "rope")

VECTOR_KINDS = ("softmax", "layernorm", "rmsnorm", "elementwise", "reduce", "rope", "topk",
                "gather", "embedding", "concat", "kv_write")


class AscendTarget(Target):
    name = "ascend"
    description = ("Huawei Ascend NPU: DaVinci cube and vector cores, MTE/FixPipe pipes, "
                   "L1/L0/UB/L2, shared HBM, HCCS links")
    spec_class = AscendSpec
    default_preset = "ascend-910b"
    presets_dir = Path(__file__).parent / "presets"
    memory_name = "HBM"

    def __init__(self):
        self._chip: tuple[AscendSpec, Chip] | None = None
        # cores with the same work emitted as one group (Builder); False: one lane per
        # core, the reference the tests hold the groups to
        self.grouping = True

    def chip(self, spec: AscendSpec) -> Chip:
        # kept while the spec is equal (a sweep's points resolve equal specs anew)
        hit = self._chip
        if hit is None or (hit[0] is not spec and hit[0] != spec):
            hit = self._chip = (spec, Chip(spec))
        return hit[1]

    def queued_launch_s(self, spec: AscendSpec) -> float:
        """Every op's device time starts with its first kernel's start (``kernel_launch_s``,
        a task on the ``launch`` lane). An op the host enqueued while the previous one still
        ran has its task taken in by the task scheduler meanwhile, and starts
        ``kernel_gap_s`` after that op ends: the rest of its launch is hidden
        (:func:`hwsim.runtime.schedule`), as on the V100."""
        return max(0.0, spec.kernel_launch_s - spec.kernel_gap_s)

    def footprint(self, graph, spec: AscendSpec, tiling):
        return memory.ascend_footprint(graph, tiling)

    def pools(self, spec: AscendSpec) -> dict[str, int]:
        """None: the HBM is a unit of its own (``hbm``), see :mod:`.chip`."""
        return {}

    def lower(self, op, graph, spec: AscendSpec, tiling=None) -> list[Task]:
        chip = self.chip(spec)
        kind = op.kind
        if kind == "view":
            return []
        if kind == "allreduce":
            return comm.lower_allreduce(op, graph, chip, tiling, self)
        return self._lower(op, graph, spec, tiling, NONE)

    # ------------------------------------------------------------ on-chip state
    def onchip_capacity_bytes(self, spec: AscendSpec) -> float:
        """Half the L2 carries tensors between ops; the other half is the op's own (the
        half :class:`.chip.L2` keeps for reuse)."""
        return spec.l2_bytes / 2

    def carries(self, op) -> bool:
        """GEMMs and the vector kernels that stream each input whole by name
        (:data:`CARRY_KINDS`); attention and the others read from HBM."""
        return op.kind in CARRY_KINDS

    def lower_carried(self, op, graph, spec: AscendSpec, tiling, carry: Carry) -> list[Task]:
        if carry and not self.carries(op):
            raise ValueError(f"ascend does not carry the inputs of a {op.kind} op on chip")
        return self._lower(op, graph, spec, tiling, carry)

    def _lower(self, op, graph, spec: AscendSpec, tiling, carry: Carry) -> list[Task]:
        bld = Builder(self.chip(spec), grouping=self.grouping)
        with gc_paused():  # (thousands of tasks, no reference cycle)
            self._emit(bld, op, graph, spec, tiling, carry)
        return bld.tasks

    def lower_summary(self, op, graph, spec: AscendSpec, tiling=None, carry=None):
        """The analytical fidelity's summary of :meth:`lower`'s tasks, handed to an
        :class:`~hwsim.engine.Accumulator` as they are emitted, none made (the same
        floats: a test holds the two equal on every op kind)."""
        if op.kind in ("view", "allreduce"):
            return super().lower_summary(op, graph, spec, tiling, carry)
        if carry and not self.carries(op):
            raise ValueError(f"ascend does not carry the inputs of a {op.kind} op on chip")
        acc = Accumulator()
        with gc_paused():
            self._emit(Builder(self.chip(spec), grouping=self.grouping, sink=acc), op, graph,
                       spec, tiling, carry or NONE)
        return acc.summary(self.pools(spec)), acc.count

    def _emit(self, bld: Builder, op, graph, spec: AscendSpec, tiling, carry: Carry) -> None:
        """The tasks of a matmul, attention or vector op, into ``bld``; ``carry``: the
        inputs it finds in the L2 and the outputs it leaves there (:mod:`hwsim.onchip`)."""
        kind = op.kind
        l2 = L2(spec.l2_bytes, carried=frozenset(f"t{op.inputs[p]}" for p in carry.inputs),
                kept=frozenset(f"t{op.outputs[q]}" for q in carry.outputs))
        if kind == "matmul":
            self._matmul(bld, l2, op, graph)
        elif kind == "attention":
            attention.lower_attention(bld, l2, op, graph, tiling)
        elif kind in VECTOR_KINDS:
            vector.lower_vector_op(bld, l2, op, graph)
        else:
            raise UnsupportedOpError(self.name, kind, op.line(graph))

    def _matmul(self, bld: Builder, l2: L2, op, graph) -> None:
        a = op.attrs
        t = graph.tensors
        ta, tb = t[op.inputs[0]], t[op.inputs[1]]
        batch, m, n, k = a["batch"], a["m"], a["n"], a["k"]
        dtype = ta.dtype
        start = bld.launch()
        b_shared = batch > 1 and tb.numel == k * n
        a_shared = batch > 1 and ta.numel == m * k
        bias = t[op.inputs[2]] if len(op.inputs) > 2 else None

        def unique(x):  # a view of a smaller tensor holds only its root's bytes
            return float(graph.stored_bytes(x.id)) if graph.root(x.id) != x.id else None

        emit_gemm(bld, l2, batch=batch, m=m, n=n, k=k, dtype=dtype,
                  out_dtype=t[op.outputs[0]].dtype, a=f"t{ta.id}", b=f"t{tb.id}",
                  out=f"t{op.outputs[0]}", a_group=batch if a_shared else 1,
                  b_group=batch if b_shared else 1, deps=(start,), label=op.name or "matmul",
                  bias=f"t{bias.id}" if bias is not None else None,
                  bias_dtype=bias.dtype if bias is not None else None,
                  bias_full=bias is not None and bias.numel > n,
                  a_unique=unique(ta), b_unique=unique(tb), closed_form=True)

    def executed_flops(self, op, graph, spec: AscendSpec, tiling=None) -> int:
        """Attention: the score blocks the strategy's kernels compute (whole tiles;
        the fused kernels with tiling-mask skip the wholly masked ones)."""
        if op.kind == "attention":
            return attention.executed_flops(self.chip(spec), op, graph, tiling)
        return super().executed_flops(op, graph, spec, tiling)

    def describe(self, op, graph, spec: AscendSpec, tiling=None, carry: Carry = NONE) -> str:
        """One line on how ``op`` runs: its tiles and cores, or its strategy and blocks
        (the same whatever ``carry`` holds in the L2: the tiling search does not see it)."""
        chip = self.chip(spec)
        a = op.attrs
        if op.kind == "matmul":
            dtype = graph.tensors[op.inputs[0]].dtype
            t = search(chip, a["batch"], a["m"], a["n"], a["k"], dtype)
            tiles = a["batch"] * cdiv(a["m"], t.om) * cdiv(a["n"], t.on)
            return (f"tiles {t.om}x{t.on}, k {t.tk}/{t.bk}; {tiles} tiles in "
                    f"{cdiv(tiles, chip.n_cube)} waves on {min(tiles, chip.n_cube)} cube cores")
        if op.kind == "attention":
            return attention.describe(chip, op, graph, tiling)
        if op.kind == "allreduce":
            return f"ring over {a['devices']} NPUs"
        if op.kind in VECTOR_KINDS:
            return f"{chip.n_vec} vector cores"
        return ""

    def peak_flops_per_s(self, spec: AscendSpec, dtype: str) -> float:
        """The cube's MACs for ``dtype``, or the vector units' lanes (2 FLOP for an FMA)."""
        from hwsim.ir.dtypes import nbytes  # noqa: PLC0415

        cube = spec.cube_macs_per_cycle.get(dtype, 0.0) * 2 * spec.clock_hz * spec.cube_cores
        lanes = spec.vector_bytes_per_cycle / max(1, nbytes(1, dtype))
        vector = 2 * lanes * spec.clock_hz * self.chip(spec).n_vec
        return max(cube, vector)

    def peak_dram_bw_bytes_per_s(self, spec: AscendSpec) -> float:
        return float(spec.dram_bw_bytes_per_s)

    def energy_table(self, spec: AscendSpec) -> EnergyTable:
        return energy_table(spec)

    def headline(self, spec: AscendSpec) -> str:
        chip = self.chip(spec)
        fp16 = spec.cube_macs_per_cycle.get("fp16", 0) * 2 * spec.clock_hz * spec.cube_cores
        return (f"{spec.architecture}, {spec.cube_cores} cube / {chip.n_vec} vector cores at "
                f"{spec.clock_hz / 1e9:.2f} GHz; fp16 {fp16 / 1e12:.0f} TFLOP/s; HBM "
                f"{spec.dram_bw_bytes_per_s / 1e12:.2f} TB/s, {spec.dram_bytes / 2**30:.0f} GiB; "
                f"L2 {spec.l2_bytes / 2**20:.0f} MiB")


TARGET = AscendTarget()
