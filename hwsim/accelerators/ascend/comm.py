"""The all-reduce between NPUs, and Tiling-AllReduce.

A tensor-parallel graph (``devices: N``, :mod:`hwsim.parallel`) has an
``allreduce`` after each row-parallel matmul. It is costed as a ring over the
preset's links: each device sends and receives ``2(N-1)/N`` of the tensor in
``2(N-1)`` steps::

    time = 2(N-1)/N · bytes / link_bw + 2(N-1) · link_latency

plus a kernel start. The vector cores add the received chunks (reduce-scatter),
reading the local tensor from HBM and writing the sum back while the links run:
those HBM bytes are timed on the vector cores, beside the link.

With ``tiling.tiling_allreduce`` (FastAttention's Tiling-AllReduce), the pair
of a matmul and its all-reduce is cut into row blocks that overlap on two
streams in the event engine (:mod:`hwsim.overlap`); each block's all-reduce is
an op lowered here like any other.
"""

from __future__ import annotations

from hwsim.collectives import allreduce
from hwsim.engine import Task
from hwsim.ir.dtypes import dtype_bits

from .chip import L2, Builder, Chip
from .vector import In, cycles_per_element, emit_vector_kernel


def lower_allreduce(op, graph, chip: Chip, tiling, target) -> list[Task]:
    spec = chip.spec
    n = op.attrs["devices"]
    tensor = graph.tensors[op.inputs[0]]
    nbytes = tensor.bytes
    ring = allreduce(nbytes, n, spec.link_bw_bytes_per_s, spec.link_latency_s,
                     spec.link_topology)
    sent = ring.sent_bytes
    time_s = ring.time_s + spec.kernel_launch_s
    # the NPU's share of the reduction: the vector cores read the local tensor, add the
    # received chunks and write the result, at the same time as the links run; those
    # HBM bytes are timed there (the op lasts as long as the longer of the two)
    bld = Builder(chip)
    bld.tasks.append(Task("link", time_s, {"link": int(sent)},
                          {"link_byte": sent, "hbm_byte": 2 * sent, "l2_byte": 2 * sent},
                          (), "interconnect", "", "allreduce (ring)"))
    eb = dtype_bits(tensor.dtype) / 8
    emit_vector_kernel(bld, L2(spec.l2_bytes), units=tensor.numel,
                       ins=[In(f"t{tensor.id}", eb)], out=f"t{op.outputs[0]}",
                       out_bytes_per_unit=eb,
                       cycles_per_unit=(n - 1) / n * cycles_per_element(spec, ("add",),
                                                                         tensor.dtype),
                       ub_per_unit=3 * eb, label="allreduce (local reduce)",
                       align_units=max(1, int(spec.ub_align_bytes // eb)))
    return bld.tasks
