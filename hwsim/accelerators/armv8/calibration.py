"""Kunpeng 920 memory microbenchmarks reproduced by the ARMv8 target's own memory path.

lmbench ``lat_mem_rd`` walks a linked list whose nodes lie one stride apart. At a
64 B stride the prefetcher runs ahead of the dependent loads, so beyond the caches
the reported time per load is the time a core takes to stream one line, i.e.
``line / bandwidth`` of one core (or of each of ``-P`` copies running together),
not the load-to-use latency. Each case runs the threads the command binds
(``--physcpubind``) with pages on the nodes it names (``--membind`` /
``--interleave``) through :func:`.memory.stream_rates`, the rates the event run
gives every DRAM transfer, and compares ``line / rate`` with the plateau (the mean
over working sets of 96 MB and more). Upstream: openeuler-mirror/wayca-scheduler,
``tools/log.lat_mem_rd.*.txt`` (commit in the file's ``commit`` column). The
``-P 4`` runs name no stride, so they chase at lmbench's default (``STRIDE``,
512 / sizeof(char *) = 64 B on a 64-bit machine: the same stride as the others).

**Several copies** (``-P 4``). lmbench runs each copy as a process of its own over
its own list and reports the median of all copies' timings (lmbench3
``src/lib_timing.c``, ``benchmp_parent``: the copies' results are merged and
``set_results`` keeps the median), so a case's modelled time is the median of its
threads' ``line / rate``, not the slowest thread's.

**Each chaser is held by its own lines in flight.** A copy is a class of
``core_lines_in_flight`` lines in :func:`.memory.stream_rates`' network, so a row of
several chasers is modelled with each chaser's Little's-law rate as its ceiling, and
the cluster port solved from the four chasers of one cluster (``-P 4`` on cores 0-3)
is the port's, not a lower bound on it: the same four chasers on four clusters carry
40 GB/s from DRAM and 62 from the L3, twice and three times what they carry on one
cluster (20.0 and 19.5). Being read-only, the chases set the port's inbound lane only;
its outbound lane (``cluster_write_bw_bytes_per_s``, the lines written back) is set
from a STREAM copy, a validate case of kind ``calibration``.

**The measured machine** is not the preset's 64-core 920-6426: the logs bind dies of
24 cores (``--physcpubind=0-23``; the lock benchmark committed with the ``-P 4``
logs, ``tools/log.0316.txt`` at 736ab34, pairs cores 0-1 with 24-25, 48-49 and
72-73, one pair a node), the two-socket 96-core Kunpeng 920 of wayca-scheduler's
``tools/kp920.2P.6CCL`` (four dies of six four-core clusters, 22.5 MiB of L3 a die,
DDR4-2933 with one DIMM a channel: ``DUT_6CCL_8CCL_specs.pdf`` there, commit
a4f5428). A cluster, a die's controllers and a core are the same parts on both, so
the rows calibrate the preset's per-core, per-cluster and per-die constants; the
L3's size a die differs (32 MiB on the 6426), and ``tests/test_armv8_die_l3.py``
checks the die share against that machine's.

**Which rows set a constant.** The rows in :data:`CALIBRATED` are the calibration
points: a preset constant was solved from each through this very path (the preset's
comment names the row). Every other row is a check, and ``hwsim calibrate`` /
``hwsim validate`` report the two apart.
"""

from __future__ import annotations

import re
from statistics import mean, median

from hwsim.calibrate import CalibrationCase, data_path, read_csv

from .memory import l3_rates, stream_rates
from .spec import Machine

FILES = ("kunpeng920/kp920_lat_mem_rd.csv",)
PLATEAU_MB = 96.0  # working sets past the 64 MiB L3
# working sets (per copy) read from the L3: six to eight times the 512 KiB L2, so
# that few lines still hit in it, and four copies' sets (16 MB at most) within the
# 22.5 MiB of L3 on a die of the measured machine
L3_WINDOW_MB = (3.0, 4.0)
# the points preset constants were solved from (armv8-kunpeng920.yaml)
CALIBRATED = {"--physcpubind=0 --membind=0": "core_lines_in_flight",
              "--physcpubind=0-3": "cluster_bw_bytes_per_s",  # the inbound lane (reads)
              # four chasers on four clusters of one die: the controller's interference
              "--physcpubind=0,4,8,12": "dram_interference_s",
              "--physcpubind=0 --membind=1": "numa_latency_s",
              "--physcpubind=0 --membind=2": "numa_latency_s",
              "--physcpubind=0 --membind=3": "numa_latency_s",
              # one chaser over 3-4 MB (L3 hits), pages local: a core's own L3 rate
              "--physcpubind=0 --membind=0 L3": "l3_bytes_per_cycle"}


def _cpus(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def cases(spec, preset: str = "") -> list[CalibrationCase]:
    if preset and "kunpeng920" not in preset:
        return []
    path = data_path(FILES[0])
    if path is None:
        return []
    rows = read_csv(path, ("source_file", "commit", "command", "working_set_MB", "latency_ns"),
                    numeric=("working_set_MB", "latency_ns"))
    groups: dict[str, list[dict]] = {}
    in_l3: dict[str, list[dict]] = {}
    for r in rows:
        if r["working_set_MB"] >= PLATEAU_MB:
            groups.setdefault(r["command"], []).append(r)
        elif L3_WINDOW_MB[0] <= r["working_set_MB"] <= L3_WINDOW_MB[1]:
            in_l3.setdefault(r["command"], []).append(r)
    out = []
    for command, rs in sorted(groups.items()):
        cpus = _cpus(re.search(r"--physcpubind=(\S+)", command).group(1))
        copies = int(re.search(r"-P (\d+)", command).group(1))
        wide = len(cpus) > copies  # the scheduler picks where the copies run: unknown
        cpus = cpus[::max(1, len(cpus) // copies)][:copies]
        mem = re.search(r"--(?:membind|interleave)=(\S+)", command)
        nodes = _cpus(mem.group(1)) if mem else None
        need = max([*(nodes or [0]), 0]) + 1
        # a binding to a node beyond the preset's socket runs on a machine with as
        # many sockets as it needs (the preset's nodes, cores and channels repeated)
        reps = -(-need // spec.numa_nodes)
        from hwsim.targets import resolve
        s = spec if reps == 1 else resolve(preset or "armv8-kunpeng920", {
            "cores": spec.cores * reps, "numa_nodes": spec.numa_nodes * reps,
            "dram_channels": spec.dram_channels * reps}).spec
        mach = Machine(s)
        threads = mach.topology.pinned(cpus, nodes or [mach.topology.node_of(cpus[0])])
        # lmbench reports the median over its copies (module docstring)
        per_line_s = median(s.line_bytes / r for r in stream_rates(mach, threads))
        key = " ".join(re.findall(r"--(?:physcpubind|membind|interleave)=\S+", command))
        out.append(CalibrationCase(
            name=f"lat_mem_rd {key}", target="armv8", preset=preset or "armv8-kunpeng920",
            parameter=CALIBRATED.get(key, "dram_interference_s" if copies > 1
                                     else "core_lines_in_flight"),
            x={"threads": len(cpus), "nodes": len(nodes or [0])},
            measured=mean(r["latency_ns"] for r in rs) * 1e-9, unit="s",
            modelled=per_line_s,
            source=f"openeuler-mirror/wayca-scheduler@{rs[0]['commit'][:7]}:{rs[0]['source_file']}",
            note="time per line of a prefetched chase (not load-to-use latency)"
                 + ("; copies spread evenly over the set by assumption (the scheduler "
                    "placed them, and its plateau jumps between placements)" if wide else "")
                 + ("; lmbench's default stride (64 B)"
                    if " 64" not in command.split("lat_mem_rd")[1] else ""),
            kind="calibration" if key in CALIBRATED else "check"))
        # the same copies over sets that stay in the L3 (pages local: a remote page's
        # line may be cached in the other die's L3, which the model does not
        # represent): each line still crosses the cluster's port (memory.l3_rates)
        rs3 = in_l3.get(command)
        if rs3 and (nodes is None or nodes == [mach.topology.node_of(cpus[0])]):
            per_line_s = median(s.line_bytes / r for r in l3_rates(mach, threads))
            out.append(CalibrationCase(
                name=f"lat_mem_rd {key} L3", target="armv8",
                preset=preset or "armv8-kunpeng920",
                parameter="cluster_bw_bytes_per_s" if copies > 1 else "l3_bytes_per_cycle",
                x={"threads": len(cpus), "working_set_MB": mean(r["working_set_MB"]
                                                                for r in rs3)},
                measured=mean(r["latency_ns"] for r in rs3) * 1e-9, unit="s",
                modelled=per_line_s,
                source=f"openeuler-mirror/wayca-scheduler@{rs3[0]['commit'][:7]}:"
                       f"{rs3[0]['source_file']}",
                note="time per line of a prefetched chase over "
                     f"{L3_WINDOW_MB[0]:g}-{L3_WINDOW_MB[1]:g} MB a copy (L3 hits)"
                     + ("; copies spread evenly over the set by assumption" if wide else ""),
                kind="calibration" if f"{key} L3" in CALIBRATED else "check"))
    return out
