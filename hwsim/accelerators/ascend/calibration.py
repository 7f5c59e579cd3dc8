"""Ascend microbenchmarks reproduced by the model (``hwsim calibrate``).

``ascend/fa_pto_percore.csv``: a hand-written FlashAttention forward kernel
(fp16 in, fp32 accumulation, non-causal, one head, head_dim 128) on 1, 2, 4
and 8 cube cores, S_q = 128 x cores, S_kv 1K-8K; measured task time.
Upstream: hw-native-sys/pto-isa@3186c381bd49e1164092e67ff1b3564302754e76
``kernels/manual/common/flash_atten/README.md`` (Tables (A2/A3)). Each row is
run through the target's own fused-attention lowering (the cube/vector
pipeline of :mod:`.cv_pipeline`) with the measured kernel's tiling
(:data:`PTO_TILING`) on the 910B preset restricted to that many cube cores
(and twice as many vector cores), and timed as the kernel's harness times it:
each core's block reads the system counter at the start and the end of its
body (``fa_performance_kernel.cpp``, ``get_sys_cnt``), ``main.cpp`` reports the
last end minus the first start; the launch before it is not in the span.
The tables were measured on the kernel's first version (pto-isa@6cc68238,
2025-12-27: one cold launch per row, no warm-up or L2 prefetch, a CV FIFO of
12); its stated tiling is :data:`PTO_TILING`, and nothing else of it changes
what the model runs (docs/targets/ascend.md, "Per-core check").
Nothing is set from these rows, they are checks (``kind="check"``).
The same experiment measured warm (the kernel's JIT build on 1-16 busy cores of a
stated 910B2, the mean of 50 back-to-back calls; pto-isa
``demos/torch_jit/flash_atten/README.md``) is a set of measured validate cases,
``hwsim/validate/cases/ascend-pto-percore.yaml``, run on the preset restricted to the
busy cores as here.
"""

from __future__ import annotations

from hwsim.calibrate import CalibrationCase, data_path, read_csv

FILES = ("ascend/fa_pto_percore.csv",)
# The measured kernel's tiling: its defaults (hw-native-sys/pto-isa@3186c38
# kernels/manual/common/flash_atten/scripts/generate_cases.py: CUBE_S0 = 128 query rows,
# TILE_S1 = 256 keys per logical tile, CUBE_S1 = 128 per cube subtile (the UB gives the
# same second level), QK_PRELOAD_DEFAULT = 4). The table does not state another.
PTO_TILING = {"attention": "fastattention", "block_q": 128, "block_kv": 256, "qk_preload": 4}
SOURCE = ("hw-native-sys/pto-isa@3186c381bd49e1164092e67ff1b3564302754e76:"
          "kernels/manual/common/flash_atten/README.md (Tables (A2/A3))")


def _latency_s(spec, cores: int, q: int, kv: int, d: int) -> float:
    from dataclasses import replace  # noqa: PLC0415

    from hwsim.engine import run_events  # noqa: PLC0415
    from hwsim.workload import build_graph, workload_from_dict  # noqa: PLC0415

    from .target import TARGET  # noqa: PLC0415

    sub = replace(spec, cube_cores=cores,
                  vector_cores=cores * max(1, spec.vector_cores // spec.cube_cores))
    wl = workload_from_dict({"name": "fa-percore", "dtype": "fp16",
                             "tiling": dict(PTO_TILING),
                             "ops": [{"kind": "attention", "heads": 1, "kv_heads": 1,
                                      "head_dim": d, "q_len": q, "kv_len": kv,
                                      "causal": False}]}, "calibration")
    g = build_graph(wl)
    tasks = TARGET.lower(g.ops[0], g, sub, wl.tiling)
    run = run_events(tasks, TARGET.pools(sub))
    # the harness's span: from the first core's start to the last core's end (each AIC and
    # AIV block reads the system counter at its body's start and end, main.cpp takes
    # max(end) - min(start)); the kernel's launch before it is not in it
    body = [i for i, t in enumerate(tasks) if t.unit != "launch"]
    return max(run.ends_s[i] for i in body) - min(run.starts_s[i] for i in body)


def cases_from(spec, path, preset: str = "ascend-910b") -> list[CalibrationCase]:
    rows = read_csv(path, ["cores_used", "seq_q", "seq_kv", "head_dim", "time_us"],
                    numeric=["cores_used", "seq_q", "seq_kv", "head_dim", "time_us"])
    out = []
    for r in rows:
        n, q, kv, d = int(r["cores_used"]), int(r["seq_q"]), int(r["seq_kv"]), int(r["head_dim"])
        out.append(CalibrationCase(
            name=f"fa-percore-c{n}-kv{kv}", target="ascend", preset=preset,
            parameter="cv_sync_s, fixpipe_bytes_per_cycle, vector_cycles_per_repeat",
            x={"cube_cores": n, "seq_q": q, "seq_kv": kv}, measured=r["time_us"] * 1e-6,
            unit="s", modelled=_latency_s(spec, n, q, kv, d),
            source=str(r.get("source") or SOURCE),
            note="first core's start to last core's end, one cold run; SKU not stated (A2/A3)"))
    return out


# The kernel ran on an A2/A3-class part (910B family); the 910A is another chip, so its
# preset gets no cases. A preset given as a YAML file is the user's to judge.
MEASURED_ON = ("ascend-910b",)


def cases(spec, preset: str = "") -> list[CalibrationCase]:
    if preset and preset not in MEASURED_ON and not preset.endswith((".yaml", ".yml")):
        return []
    path = data_path(FILES[0])
    return cases_from(spec, path, preset or MEASURED_ON[0]) if path else []
