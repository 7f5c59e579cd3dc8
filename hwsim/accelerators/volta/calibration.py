"""The V100's memory path against microbenchmarks of its parts.

Two sweeps from RRZE's GPU benchmarks (github.com/RRZE-HPC/gpu-benches, commit
1038c5d, run on a Tesla V100 PCIe at 1,380 MHz), each reproduced by *this
model's own* kernels, groups and event run (:mod:`.gpu`), not by a formula
written for the comparison:

- ``gpu-stream/v100.txt``, the **read** kernel against occupancy: every thread
  loads one 8-byte double and exits; a shared-memory spoiler holds one or two
  blocks per SM, so the block size sets the resident threads (16 to 2,048 per
  SM). Here it is a :class:`~.gpu.Kernel` of that block size and shared memory,
  whose blocks each read ``8 x threads`` bytes from HBM with 8 bytes in flight
  per thread. Its time comes from Little's law in :meth:`.gpu.Gpu.memory_time`
  (bytes in flight over the loaded latency), the block turnover, and the shared
  ``hbm`` and ``l2`` units of the event run. The lowest point (16 threads per
  SM) set ``block_turnover_cycles``; the rest check how the per-SM draw grows
  with resident warps and bends over under load (``dram_latency_cycles``,
  ``l2_bw_bytes_per_s``) up to the HBM unit's cap (``dram_bw_bytes_per_s``).
- ``gpu-latency/v100.txt``, a single-warp random **pointer chase** over a
  growing working set: one dependent 8-byte load at a time. Here a one-warp
  kernel with 8 bytes in flight whose loads hit the level the working set falls
  in (:meth:`.gpu.Gpu.level_of`): L1 (``l1_latency_cycles``), L2
  (``l2_latency_cycles``) or DRAM (``dram_latency_cycles``). Points near a
  capacity (the transitions, where part of the set still hits) are left out, and
  one point is kept per doubling of the working set.

The measured board is the PCIe V100: the cases belong to ``volta-v100-pcie``
(another preset gets none; its latencies in cycles are the same silicon's).
"""

from __future__ import annotations

from hwsim.calibrate import CalibrationCase, data_path, read_csv
from hwsim.engine.events import run_events

from .gpu import Builder, Gpu, Kernel, Work

STREAM = "v100/v100_rrze_stream_bandwidth.csv"
CHASE = "v100/v100_rrze_pointer_chase_latency.csv"
FILES = (STREAM, CHASE)
STREAM_SOURCE = "RRZE-HPC/gpu-benches@1038c5d gpu-stream/v100.txt (Tesla V100 PCIe)"
CHASE_SOURCE = "RRZE-HPC/gpu-benches@1038c5d gpu-latency/v100.txt (Tesla V100 PCIe)"
STREAM_ELEMENTS = 2**27  # 1 GiB of doubles: launch overhead under 0.5 % of the time
CHASE_LOADS = 10**6  # the benchmark's iterations
# the transitions, left out: from 15 % under a cache's capacity (part of the set is
# already evicted by the random walk) to 30 % over it (part still hits)
TRANSITION = (0.85, 1.30)
CHASE_SPACING = 2.0  # one chase point per doubling of the working set


def _kernel_time_s(gpu: Gpu, k: Kernel) -> float:
    """Seconds of ``k`` through the target's own builder and the event engine."""
    bld = Builder(gpu, lambda kernel, work: {}, "calibration")
    bld.kernel(k)
    return run_events(bld.tasks).latency_s


def stream_read_bandwidth(gpu: Gpu, block_threads: int, blocks_per_sm: int) -> float:
    """B/s the model gives gpu-stream's read kernel: blocks of ``block_threads``,
    each thread one 8-byte load, ``blocks_per_sm`` resident (a shared-memory spoiler)."""
    spec = gpu.spec
    spoiler = int(spec.smem_per_sm_bytes // blocks_per_sm)
    blocks = STREAM_ELEMENTS // block_threads
    nbytes = 8.0 * block_threads
    k = Kernel("read", f"{block_threads}x1", block_threads, 32, spoiler,
               [(blocks, Work(l2_bytes=nbytes, hbm_read=nbytes))], dtype="fp64",
               tensor=False, inflight_bytes_per_thread=8.0)
    return blocks * nbytes / _kernel_time_s(gpu, k)


def chase_latency_cycles(gpu: Gpu, working_set_bytes: float) -> float:
    """Clocks per load the model gives a one-warp dependent pointer chase over
    ``working_set_bytes``: each load waits for the previous (8 bytes in flight)."""
    level = gpu.level_of(working_set_bytes)
    nbytes = 8.0 * CHASE_LOADS
    w = Work(l1_bytes=nbytes) if level == "l1" else Work(l2_bytes=nbytes)
    if level == "dram":
        w.hbm_read = nbytes
    k = Kernel("chase", "1 warp", 32, 32, 0, [(1, w)], dtype="fp64", tensor=False,
               inflight_bytes_per_thread=8.0 / 32)
    seconds = gpu.memory_time(k, w, 1)[0]
    return seconds * gpu.spec.clock_hz / CHASE_LOADS


BOARD_PRESET = "volta-v100-pcie"  # the board RRZE measured


def cases(spec, preset: str = "") -> list[CalibrationCase]:
    """The stream-read and pointer-chase points that are present, modelled on ``spec``;
    none for a preset other than the measured board's (``volta-v100-pcie``)."""
    if preset and preset != BOARD_PRESET:
        return []
    preset = preset or BOARD_PRESET
    gpu = Gpu(spec)
    out: list[CalibrationCase] = []
    path = data_path(STREAM)
    if path is not None:
        rows = read_csv(path, ["kernel"], ["block_size", "blocks_per_SM",
                                           "total_blocks_or_threads_col2", "bandwidth_GBps"])
        for r in rows:
            if r["kernel"] != "read":
                continue
            bs, bps = int(r["block_size"]), int(r["blocks_per_SM"])
            threads_per_sm = bs * bps
            first = threads_per_sm == 16
            out.append(CalibrationCase(
                name=f"stream-read-{threads_per_sm}thr", target="volta", preset=preset,
                parameter="block_turnover_cycles" if first else "dram_latency_cycles",
                x={"threads_per_sm": threads_per_sm, "block_threads": bs,
                   "blocks_per_sm": bps},
                measured=r["bandwidth_GBps"] * 1e9, unit="B/s",
                modelled=stream_read_bandwidth(gpu, bs, bps), source=STREAM_SOURCE,
                note="one 8-B load per thread, then the block exits",
                kind="calibration" if first else "check"))
    path = data_path(CHASE)
    if path is not None:
        rows = read_csv(path, [], ["working_set_kB", "latency_cycles_mean"])
        caps = (spec.l1_bytes, spec.l2_bytes)
        params = {"l1": "l1_latency_cycles", "l2": "l2_latency_cycles",
                  "dram": "dram_latency_cycles"}
        last = 0.0
        for r in rows:
            ws = r["working_set_kB"] * 1e3
            if any(TRANSITION[0] * c <= ws <= TRANSITION[1] * c for c in caps):
                continue
            if ws < CHASE_SPACING * last:
                continue
            last = ws
            level = gpu.level_of(ws)
            out.append(CalibrationCase(
                name=f"chase-{level}-{r['working_set_kB']:g}kB", target="volta",
                preset=preset, parameter=params[level],
                x={"working_set_bytes": ws}, measured=r["latency_cycles_mean"],
                unit="cycles", modelled=chase_latency_cycles(gpu, ws), source=CHASE_SOURCE,
                note=f"single-warp random chase, {level} plateau; the preset's latency was "
                     f"read from this plateau", kind="calibration"))
    return out
