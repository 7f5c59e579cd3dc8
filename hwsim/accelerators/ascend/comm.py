"""The all-reduce between NPUs, and Tiling-AllReduce.

A tensor-parallel graph (``devices: N``, :mod:`hwsim.parallel`) has an
``allreduce`` after each row-parallel matmul. It is costed as a ring over the
preset's links: each device sends and receives ``2(N-1)/N`` of the tensor in
``2(N-1)`` steps::

    time = 2(N-1)/N · bytes / link_bw + 2(N-1) · link_latency

plus a kernel start. The vector cores add the received chunks (reduce-scatter),
reading the local tensor from HBM and writing the sum back while the links run:
those HBM bytes are timed on the vector cores, beside the link.

With ``tiling.tiling_allreduce`` (FastAttention's Tiling-AllReduce, like CANN's
fused MatmulAllReduce), the all-reduce of the output tiles a wave of the matmul
has finished overlaps the matmul's remaining waves: chunk i (of C) is ready
when its last wave is done, the link sends chunks in order, and the op
costs only what sticks out after the matmul ends. C (chunks of whole waves,
not necessarily equal) is chosen to minimise that. Ops run one after
another, so the all-reduce op carries that exposed time; the matmul's time is
taken from the same lowering, analytically.
"""

from __future__ import annotations

from hwsim.collectives import allreduce
from hwsim.engine import Task, analytical_latency
from hwsim.ir.dtypes import dtype_bits

from .chip import L2, Builder, Chip, cdiv
from .vector import In, cycles_per_element, emit_vector_kernel


def ring_time(spec, nbytes: float, devices: int) -> float:
    """All-reduce time over the preset's links (a ring, or HCCS's full mesh)."""
    return allreduce(nbytes, devices, spec.link_bw_bytes_per_s, spec.link_latency_s,
                     spec.link_topology).time_s


def exposed_time(spec, nbytes: float, devices: int, producer_s: float,
                 waves: int) -> tuple[float, int]:
    """(time the all-reduce adds after its producer, chunks) with tiling-AllReduce.

    Chunk i of C holds the output tiles of waves [i·W/C, (i+1)·W/C) (rounded: the
    chunks need not be equal), is ready when its last wave is done, and is sent
    after the chunk before it."""
    waves = max(1, waves)
    best = (ring_time(spec, nbytes, devices), 1)
    for c in range(2, min(waves, MAX_CHUNKS) + 1):
        done = 0.0
        lo = 0
        for i in range(c):
            hi = round((i + 1) * waves / c)
            done = max(done, hi / waves * producer_s) + ring_time(
                spec, nbytes * (hi - lo) / waves, devices)
            lo = hi
        best = min(best, (max(0.0, done - producer_s), c))
    return best


MAX_CHUNKS = 128  # beyond this the per-chunk link latency outweighs any overlap


def _producer(op, graph):
    src = op.inputs[0]
    for prev in graph.ops:
        if src in prev.outputs:
            return prev
    return None


def lower_allreduce(op, graph, chip: Chip, tiling, target) -> list[Task]:
    spec = chip.spec
    n = op.attrs["devices"]
    tensor = graph.tensors[op.inputs[0]]
    nbytes = tensor.bytes
    ring = allreduce(nbytes, n, spec.link_bw_bytes_per_s, spec.link_latency_s,
                     spec.link_topology)
    sent = ring.sent_bytes
    time_s = ring.time_s + spec.kernel_launch_s
    label = "allreduce (ring)"
    prod = _producer(op, graph) if getattr(tiling, "tiling_allreduce", False) else None
    if prod is not None and prod.kind == "matmul":
        tasks = target.lower(prod, graph, spec, tiling)
        prod_s = analytical_latency(tasks, target.pools(spec))
        from .gemm import search  # noqa: PLC0415

        a = prod.attrs
        t = search(chip, a["batch"], a["m"], a["n"], a["k"], graph.tensors[prod.inputs[0]].dtype)
        waves = cdiv(a["batch"] * cdiv(a["m"], t.om) * cdiv(a["n"], t.on), chip.n_cube)
        time_s, chunks = exposed_time(spec, nbytes, n, prod_s, waves)
        label = f"allreduce (tiling-AllReduce, {chunks} chunks, exposed part)"
    # the NPU's share of the reduction: the vector cores read the local tensor, add the
    # received chunks and write the result, at the same time as the links run; those
    # HBM bytes are timed there (the op lasts as long as the longer of the two)
    bld = Builder(chip)
    bld.tasks.append(Task("link", time_s, {"link": int(sent)},
                          {"link_byte": sent, "hbm_byte": 2 * sent, "l2_byte": 2 * sent},
                          (), "interconnect", "", label))
    eb = dtype_bits(tensor.dtype) / 8
    emit_vector_kernel(bld, L2(spec.l2_bytes), units=tensor.numel,
                       ins=[In(f"t{tensor.id}", eb)], out=f"t{op.outputs[0]}",
                       out_bytes_per_unit=eb,
                       cycles_per_unit=(n - 1) / n * cycles_per_element(spec, ("add",),
                                                                         tensor.dtype),
                       ub_per_unit=3 * eb, label="allreduce (local reduce)",
                       align_units=max(1, int(spec.ub_align_bytes // eb)))
    return bld.tasks
