"""The roofline's DRAM bandwidth against V100 streaming microbenchmarks.

A roofline has one memory parameter, ``dram_bw_bytes_per_s``: every op moves its
compulsory bytes at that rate. What a real machine streams depends on the kernel
(a read-only stream, a write-only one, one with three reads per write) and on how
many warps it keeps in flight; a roofline has no occupancy, so the honest
comparison is with the machine *filled*: each kernel of RRZE's ``gpu-stream`` at
the highest occupancy it was run at.

Each kernel becomes the op the simulator would see for it (fp64 buffers of
gpu-stream's ``max_buffer_size`` = 256 Mi + 2 elements):

=========  ==================================  ======================================
kernel     what it does (gpu-stream/main.cu)   op
=========  ==================================  ======================================
init       ``A[i] = 0.23``                     elementwise fill -> A
read       ``temp = B[i]`` (never stored)      reduce sum of B to one element
scale      ``A[i] = B[i] * 1.2``               elementwise mul B -> A
triad      ``A[i] = B[i] * D[i] + C[i]``       elementwise fma B, C, D -> A
3pt, 5pt   1-D stencils of B into A            elementwise add B -> A (neighbours hit
                                               the cache: two compulsory streams)
=========  ==================================  ======================================

The benchmark reports ``streams x N x 8 B / median time`` (1, 1, 2, 4, 2, 2
streams); the modelled value is the same count of bytes over the roofline's time
for the op (its ``lower`` scheduled by the engine, launch overhead included), so
the two are the same quantity. The roofline's peak FLOP/s is grounded in no case
here: no measurement in the calibration data reaches a V100's compute peak at a
stated precision (the cuda-roofline points are fp64 at a PCIe clock, and memory-
bound in the model at their intensities).

Upstream: RRZE-HPC/gpu-benches@1038c5d ``gpu-stream/v100.txt`` (data) and
``gpu-stream/main.cu`` (kernels, buffer size, stream counts).
"""

from __future__ import annotations

from hwsim.calibrate import CalibrationCase, data_path, header, op_latency_s, read_csv
from hwsim.errors import InputError
from hwsim.ir.graph import Graph

#: the data files this module reads, relative to the calibration folder
FILES = ("v100/v100_rrze_stream_bandwidth.csv",)

#: presets whose machine the shipped files measured (a V100; the stream file's board is a
#: PCIe V100, whose HBM2 has the SXM2's 900 GB/s: NVIDIA V100 datasheet)
PRESETS = {"roofline-v100": FILES}

STREAM_COLUMNS = ("kernel", "block_size", "blocks_per_SM", "occupancy_pct", "bandwidth_GBps")
STREAM_NUMERIC = ("block_size", "blocks_per_SM", "occupancy_pct", "bandwidth_GBps")

# gpu-stream/main.cu@1038c5d: const int64_t max_buffer_size = 256l * 1024 * 1024 + 2 (doubles)
BUFFER_ELEMENTS = 256 * 1024 * 1024 + 2
ELEMENT_BYTES = 8  # double
# streams per kernel as main.cu counts them for its GB/s: {init_kernel, 1}, {read_kernel, 1},
# {scale_kernel, 2}, {triad_kernel, 4}, {stencil1d3pt_kernel, 2}, {stencil1d5pt_kernel, 2}
STREAMS = {"init": 1, "read": 1, "scale": 2, "triad": 4, "3pt": 2, "5pt": 2}
UPSTREAM = "RRZE-HPC/gpu-benches@1038c5d:gpu-stream/v100.txt"


def stream_graph(kernel: str, elements: int = BUFFER_ELEMENTS) -> Graph:
    """The one-op graph of a gpu-stream kernel over fp64 buffers of ``elements``."""
    g = Graph({"name": f"gpu-stream {kernel}"})
    buf = [elements]

    def inputs(n: int) -> list[int]:
        return [g.add_tensor(buf, "fp64", "input") for _ in range(n)]

    if kernel == "init":
        g.add_op("elementwise", [], [g.add_tensor(buf, "fp64")],
                 {"fn": "fill", "elements": elements})
    elif kernel == "read":
        g.add_op("reduce", inputs(1), [g.add_tensor([1], "fp64")],
                 {"fn": "sum", "elements": elements, "out_elements": 1})
    elif kernel == "scale":
        g.add_op("elementwise", inputs(1), [g.add_tensor(buf, "fp64")],
                 {"fn": "mul", "elements": elements})
    elif kernel == "triad":
        g.add_op("elementwise", inputs(3), [g.add_tensor(buf, "fp64")],
                 {"fn": "fma", "elements": elements})
    elif kernel in ("3pt", "5pt"):
        g.add_op("elementwise", inputs(1), [g.add_tensor(buf, "fp64")],
                 {"fn": "add", "elements": elements})
    else:
        raise ValueError(kernel)
    return g


def stream_bandwidth_bytes_per_s(target, spec, kernel: str) -> float:
    """What gpu-stream would report for ``kernel`` on the modelled machine."""
    g = stream_graph(kernel)
    counted = STREAMS[kernel] * BUFFER_ELEMENTS * ELEMENT_BYTES
    return counted / op_latency_s(target, spec, g)


def _stream_cases(spec, preset: str, path, source_default: str) -> list[CalibrationCase]:
    from . import TARGET  # noqa: PLC0415 - the package imports this module's target

    rows = read_csv(path, STREAM_COLUMNS, STREAM_NUMERIC)
    for i, r in enumerate(rows, start=2):
        if r["kernel"] not in STREAMS:
            raise InputError(f"line {i}: unknown kernel {r['kernel']!r} (gpu-stream's: "
                             f"{', '.join(STREAMS)})", source=str(path), field="kernel")
    full = max(r["occupancy_pct"] for r in rows)
    out = []
    modelled: dict[str, float] = {}
    for r in rows:
        if r["occupancy_pct"] != full:
            continue  # a roofline has no occupancy: only the filled machine is its case
        k = r["kernel"]
        if k not in modelled:
            modelled[k] = stream_bandwidth_bytes_per_s(TARGET, spec, k)
        out.append(CalibrationCase(
            name=f"stream-{k}-b{int(r['block_size'])}x{int(r['blocks_per_SM'])}",
            target="roofline", preset=preset, parameter="dram_bw_bytes_per_s",
            x={"occupancy_pct": r["occupancy_pct"], "block_size": r["block_size"],
               "blocks_per_sm": r["blocks_per_SM"]},
            measured=r["bandwidth_GBps"] * 1e9, unit="B/s", modelled=modelled[k],
            source=_source(r, source_default),
            note="gpu-stream kernels over 2 GiB fp64 buffers, at the highest occupancy run "
                 "(a roofline has no occupancy)"))
    return out


def _source(row: dict, default: str) -> str:
    """The upstream of a row: its ``source`` column's repository@commit:path, shortened."""
    s = (row.get("source") or "").strip()
    if not s:
        return default
    repo, at, rest = s.partition("@")
    if at and ":" in rest:
        commit, _, path = rest.partition(":")
        return f"{repo}@{commit[:7]}:{path.split(' ')[0]}"
    return s


def cases(spec, preset: str = "") -> list[CalibrationCase]:
    """The streaming cases of the machine ``preset`` names (none for another machine, or
    when the data file is absent)."""
    if preset not in PRESETS:
        return []
    path = data_path(FILES[0])
    return _stream_cases(spec, preset, path, UPSTREAM) if path is not None else []


def cases_from(spec, path, preset: str = "") -> list[CalibrationCase]:
    """Cases of a user's own gpu-stream CSV (columns: kernel, block_size, blocks_per_SM,
    occupancy_pct, bandwidth_GBps; optionally source)."""
    cols = header(path)
    if "kernel" not in cols:
        raise InputError("not a gpu-stream file: the roofline reads one with columns "
                         + ", ".join(STREAM_COLUMNS), source=str(path), field="kernel")
    return _stream_cases(spec, preset, path, str(path))
