"""Serving: requests arriving over time, batched continuously under a memory limit.

:func:`serve` runs a request stream through one device (or one tensor-parallel
group) of ``target`` the way an iteration-level scheduler does (Orca, OSDI
2022; vLLM's default policy): each iteration is either a prefill of newly
admitted requests or one decode step of every running request, as simpy
processes (an arrival process and the scheduler's loop) on the engine's
clock. What each iteration costs is simulated by the target like any other
forward (:func:`hwsim.simulate.run_graph`), once per distinct shape.

**The requests.** A workload with ``phase: generate`` names the model, its
pruning (a KV policy, :mod:`hwsim.generation`), dtype, devices and tiling;
the requests come from :func:`poisson_arrivals` (a rate, with the workload's
``seq_len`` prompt and ``new_tokens`` output, or others given) or from a CSV
file of ``arrival_s, prompt_tokens, output_tokens`` (:func:`read_arrivals`).

**Admission.** Waiting requests are admitted first come, first served, while
fewer than ``max_batch`` run and their KV caches fit: a request reserves, when
admitted, the largest cache its policy lets it reach (``prompt + output - 1``
tokens dense, the budget under H2O, ...), so a running request never has to
be preempted, and its share of a decode step's activations (they grow with
the batch); the device's capacity less the weights and the activations that do
not grow with the batch (the larger of the longest prompt's prefill and a decode
step's fixed part) is what the requests may fill. ``memory_batch`` in the totals
is how many requests of the workload's own size fit that way, so a decode step
of that many fits the device.

**Iterations.** Admitted requests are prefilled first (one after another, as
an engine without chunked prefill runs them: each prompt's prefill at batch 1;
its first token at its end), then the running requests decode together. A
decode step of b requests with caches c_1..c_b is costed as the batch-b step
at their mean cache, rounded up to a grid of ``kv_grid`` tokens (each
sequence's attention is linear in its cache, the rest is shared): rounding up
makes the step at most one grid step's cache too slow, never too fast.

**The report** (:class:`ServingReport`): each request's arrival, first token
and finish, TTFT and TPOT; the run's throughput (generated tokens per second
from the first arrival to the last finish) and TTFT / TPOT percentiles, the
mean batch, and ``saturation_tokens_per_s``: the throughput the
memory-limited batch allows, ``B O / ((O - 1) T_d(B) + B T_p)`` for B
requests of O output tokens decoding together at T_d per step and
prefilled at T_p each, the bound a rising arrival rate approaches.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .errors import InputError
from .generation import decode_steps, phase_workload, policy_of, with_fields
from .report.generation import percentile
from .workload import Workload

if TYPE_CHECKING:
    import pandas as pd

    from .targets import ResolvedTarget

MAX_REQUESTS = 100_000  # a run's requests (each is a few objects and simpy events)
# tokens a run generates in all: at worst one decode iteration each (a batch of one), a
# few microseconds of the scheduler's loop apiece
MAX_TOKENS = 1 << 22
# the latest arrival a run takes (about 32 years): the engine's clock is a float in
# seconds, and at 1e9 s its resolution (about 0.1 us) still resolves a decode step
MAX_ARRIVAL_S = 1e9
KV_GRID_STEPS = 64  # the decode step's cache is rounded up to 1/64 of the longest cache


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def poisson_arrivals(rate_per_s: float, count: int, prompt_tokens: int, output_tokens: int,
                     *, seed: int = 0) -> list[Request]:
    """``count`` requests of equal size whose arrivals are a Poisson process of
    ``rate_per_s`` (exponential gaps), from time 0, reproducible by ``seed``."""
    if not (isinstance(rate_per_s, (int, float)) and math.isfinite(rate_per_s)
            and rate_per_s > 0):
        raise InputError(f"expected a rate > 0 requests per second, got {rate_per_s!r}",
                         source="arrivals", field="rate_per_s")
    _check_count(count, "requests")
    rng = random.Random(seed)
    t, out = 0.0, []
    for i in range(count):
        out.append(Request(i, t, int(prompt_tokens), int(output_tokens)))
        t += rng.expovariate(rate_per_s)
    if out[-1].arrival_s > MAX_ARRIVAL_S:
        raise InputError(f"{count:,} requests at {rate_per_s:g} per second arrive over "
                         f"{out[-1].arrival_s:.3g} s: at most {MAX_ARRIVAL_S:g} s (a higher "
                         f"rate or fewer requests)", source="arrivals", field="rate_per_s")
    return out


def read_arrivals(path: str) -> list[Request]:
    """Requests from a CSV file with the columns ``arrival_s``, ``prompt_tokens`` and
    ``output_tokens`` (one request per row, in any order)."""
    from .calibrate import read_csv  # noqa: PLC0415 (the checked CSV reader)

    cols = ["arrival_s", "prompt_tokens", "output_tokens"]
    rows = read_csv(path, cols, numeric=cols, what="arrivals file")
    _check_count(len(rows), "rows", source=path)
    out = []
    for i, r in enumerate(rows, start=2):
        t, p, o = r["arrival_s"], r["prompt_tokens"], r["output_tokens"]
        if not 0 <= t <= MAX_ARRIVAL_S:  # NaN fails too
            raise InputError(f"row {i}: arrival_s must be a time from 0 to "
                             f"{MAX_ARRIVAL_S:g} s, got {t!r}",
                             source=path, field="arrival_s")
        for name, v in (("prompt_tokens", p), ("output_tokens", o)):
            if v != int(v) or v < 1:
                raise InputError(f"row {i}: {name} must be a whole number >= 1, got {v!r}",
                                 source=path, field=name)
        out.append(Request(len(out), float(t), int(p), int(o)))
    out.sort(key=lambda r: (r.arrival_s, r.id))
    return [Request(i, r.arrival_s, r.prompt_tokens, r.output_tokens)
            for i, r in enumerate(out)]


def _check_count(n: Any, what: str, source: str = "arrivals") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS:
        raise InputError(f"expected 1 to {MAX_REQUESTS:,} {what}, got {n!r}", source=source,
                         field=what)


@dataclass
class _Running:
    req: Request
    admitted_s: float
    reserved_bytes: float
    first_token_s: float = 0.0
    produced: int = 0  # tokens generated so far (the prefill's is the first)


class _Costs:
    """Iteration costs on the target, each distinct shape simulated once."""

    def __init__(self, wl: Workload, resolved: ResolvedTarget, fidelity: str):
        self.wl, self.resolved, self.fidelity = wl, resolved, fidelity
        self.memo: dict = {}
        self.prefills: dict[int, float] = {}
        self.decodes: dict[tuple[int, int], float] = {}

    def prefill_s(self, prompt: int) -> float:
        if prompt not in self.prefills:
            from .simulate import device_graph, model_graphs, run_graph  # noqa: PLC0415

            one = with_fields(self.wl, batch=1, seq_len=prompt)
            first = phase_workload(one, "prefill", prompt, 0, list(one.pruning))
            g = device_graph(model_graphs(first)[0], first)
            self.prefills[prompt] = run_graph(g, self.resolved, first, dense_flops=0,
                                              fidelity=self.fidelity,
                                              memo=self.memo).totals["latency_s"]
        return self.prefills[prompt]

    def decode_s(self, batch: int, kv: int, prompt: int) -> float:
        key = (batch, kv)
        if key not in self.decodes:
            from .simulate import device_graph, model_graphs, run_graph  # noqa: PLC0415

            one = with_fields(self.wl, batch=batch, seq_len=prompt)
            steps = decode_steps(one, policy_of(one))
            step = phase_workload(one, "decode", 1, kv, steps)
            g = device_graph(model_graphs(step)[0], step)
            self.decodes[key] = run_graph(g, self.resolved, step, dense_flops=0,
                                          fidelity=self.fidelity,
                                          memo=self.memo).totals["latency_s"]
        return self.decodes[key]


def _memory(wl: Workload, resolved: ResolvedTarget, longest_prompt: int, longest_cache: int):
    """(bytes the requests may fill, KV bytes per cached token of one sequence,
    activation bytes per decoding sequence).

    A decode step's activations grow with its batch (each sequence brings its rows
    of every activation, and with an unfused attention its scores over its cache),
    so a request reserves its share of them beside its KV cache: the slope of the
    step's activations between batch 1 and 2 at the longest cache. What is left for
    the requests is the capacity less the weights and the larger of the longest
    prompt's prefill activations (decodes pause while a prompt prefills) and the
    decode step's activations that do not grow with the batch."""
    from .simulate import device_graph, model_graphs  # noqa: PLC0415

    t, spec = resolved.target, resolved.spec

    def footprint(w: Workload):
        return t.footprint(device_graph(model_graphs(w)[0], w), spec, w.tiling)

    one = with_fields(wl, batch=1, seq_len=longest_prompt)
    fp = footprint(phase_workload(one, "prefill", longest_prompt, 0, list(one.pruning)))
    step = phase_workload(one, "decode", 1, 1023, [])  # a dense step: 1,024 tokens after its write
    kv_per_token = footprint(step).kv_cache_bytes / 1024
    acts = []
    for batch in (1, 2):
        b = with_fields(wl, batch=batch, seq_len=longest_prompt)
        acts.append(footprint(phase_workload(b, "decode", 1, max(1, longest_cache - 1),
                                             decode_steps(b, policy_of(b)))).activations_bytes)
    per_seq = max(0.0, acts[1] - acts[0])
    fixed = max(fp.activations_bytes, acts[0] - per_seq)
    cap = t.capacity_bytes(spec)
    free = cap - fp.weights_bytes - fixed if cap else math.inf
    return free, kv_per_token, per_seq


def serve(workload: Workload | str, target: str | ResolvedTarget | None = None, *,
          arrivals: Iterable[Request] | None = None, rate_per_s: float = 0.0,
          requests: int = 100, seed: int = 0, max_batch: int = 0, sets=(),
          fidelity: str = "analytical") -> ServingReport:
    """Serve a request stream (module docstring). ``arrivals``: the requests (else a
    Poisson stream of ``requests`` at ``rate_per_s`` with the workload's sizes);
    ``max_batch``: requests decoding at once (0: as many as memory allows);
    ``target`` None: the workload's ``target:`` field, else roofline."""
    import simpy  # noqa: PLC0415

    from .simulate import FIDELITIES, load_with_sets, resolve_target  # noqa: PLC0415

    wl, target_sets = load_with_sets(workload, sets)
    if wl.phase != "generate":
        raise InputError(f"serving runs generations: the workload needs phase: generate "
                         f"(its model, pruning and sizes), got {wl.phase}", source=wl.source,
                         field="phase")
    if fidelity not in FIDELITIES:
        raise InputError(f"expected one of {', '.join(FIDELITIES)}, got {fidelity!r}",
                         source="--fidelity")
    if policy_of(wl).lazy:  # a batch's step is costed at one cache length, not per layer
        i = next(i for i, s in enumerate(wl.pruning) if s.get("method") == "lazyllm")
        raise InputError("lazyllm is not modelled by the serving scheduler (its caches differ "
                         "per layer and per step); simulate the generation instead (hwsim "
                         "simulate, phase: generate)", source=wl.source,
                         field=f"pruning.{i}.method")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 0:
        raise InputError(f"expected a whole number >= 0, got {max_batch!r}",
                         source="--max-batch")
    resolved = resolve_target(target, wl, target_sets)
    reqs = list(arrivals) if arrivals is not None else poisson_arrivals(
        rate_per_s, requests, wl.seq_len, wl.new_tokens, seed=seed)
    _check_count(len(reqs), "requests")
    tokens = sum(r.output_tokens for r in reqs)
    if tokens > MAX_TOKENS:
        raise InputError(f"the requests generate {tokens:,} tokens in all: at most "
                         f"{MAX_TOKENS:,} in one run (fewer requests or shorter outputs)",
                         source="arrivals", field="output_tokens")
    costs = _Costs(wl, resolved, fidelity)
    longest = max(r.prompt_tokens for r in reqs)
    longest_cache = max(_policy(wl, r).cache(max(1, r.output_tokens - 1)) + 1 for r in reqs)
    free, kv_per_token, act_per_seq = _memory(wl, resolved, longest, longest_cache)
    grid = max(1, math.ceil(longest_cache / KV_GRID_STEPS))

    def reserve(r: Request) -> float:
        return (kv_per_token * (_policy(wl, r).cache(max(1, r.output_tokens - 1)) + 1)
                + act_per_seq)

    for r in reqs:
        if reserve(r) > free:
            raise InputError(f"request {r.id} ({r.prompt_tokens} prompt + {r.output_tokens} "
                             f"output tokens) needs {reserve(r) / 2**30:.2f} GiB of KV cache "
                             f"and decode activations; "
                             f"{max(0.0, free) / 2**30:.2f} GiB are left beside the weights on "
                             f"{resolved.preset}", source=resolved.source,
                             field=f"spec.{resolved.target.capacity_field}")
    env = simpy.Environment()
    queue = simpy.Store(env)
    records: dict[int, dict[str, float]] = {}
    iterations: list[tuple[str, float, float, int]] = []

    def arrive():
        for r in reqs:
            if r.arrival_s > env.now:
                yield env.timeout(r.arrival_s - env.now)
            yield queue.put(r)

    def scheduler():
        waiting: list[Request] = []
        running: list[_Running] = []
        used = 0.0
        finished = 0
        while finished < len(reqs):
            waiting.extend(queue.items)
            queue.items.clear()
            if not waiting and not running:
                waiting.append((yield queue.get()))
                continue
            admitted = []
            while waiting and (not max_batch or len(running) + len(admitted) < max_batch) \
                    and used + reserve(waiting[0]) <= free:
                r = waiting.pop(0)
                used += reserve(r)
                admitted.append(_Running(r, env.now, reserve(r)))
            if admitted:  # prefill iteration: each admitted prompt, one after another
                start = env.now
                for run in admitted:
                    yield env.timeout(costs.prefill_s(run.req.prompt_tokens))
                    run.first_token_s = env.now
                    run.produced = 1
                iterations.append(("prefill", start, env.now, len(admitted)))
                running.extend(admitted)
            elif running:  # one decode step of every running request
                caches = [_policy(wl, run.req).cache(run.produced) for run in running]
                mean = sum(caches) / len(caches)
                kv = min(longest_cache, math.ceil(mean / grid) * grid)
                prompt = running[0].req.prompt_tokens
                start = env.now
                yield env.timeout(costs.decode_s(len(running), kv, prompt))
                iterations.append(("decode", start, env.now, len(running)))
                for run in running:
                    run.produced += 1
            else:  # nothing runs and the first waiting request does not fit: cannot be
                raise AssertionError("a waiting request fits an empty device")  # (checked)
            still = []
            for run in running:
                if run.produced >= run.req.output_tokens:
                    used -= run.reserved_bytes
                    finished += 1
                    records[run.req.id] = {"admitted_s": run.admitted_s,
                                           "first_token_s": run.first_token_s,
                                           "finish_s": env.now}
                else:
                    still.append(run)
            running = still

    env.process(arrive())
    done = env.process(scheduler())
    env.run(until=done)
    kv_mean_reserve = reserve(Request(-1, 0.0, wl.seq_len, wl.new_tokens))
    memory_batch = int(free // kv_mean_reserve) if math.isfinite(free) else 0
    return ServingReport(wl, resolved, fidelity, reqs, records, iterations, costs,
                         max_batch=max_batch, memory_batch=memory_batch, kv_grid=grid)


def _policy(wl: Workload, r: Request):
    """The KV policy of a request of its own prompt length."""
    if r.prompt_tokens == wl.seq_len:
        return policy_of(wl)
    return policy_of(with_fields(wl, seq_len=r.prompt_tokens,
                                 new_tokens=max(1, r.output_tokens)))


class ServingReport:
    """A served request stream: per request and for the run (module docstring)."""

    def __init__(self, wl: Workload, resolved: ResolvedTarget, fidelity: str,
                 reqs: list[Request], records: dict, iterations: list, costs: _Costs, *,
                 max_batch: int, memory_batch: int, kv_grid: int):
        self.workload, self.target, self.fidelity = wl, resolved, fidelity
        self.request_rows = []
        for r in reqs:
            rec = records[r.id]
            out = r.output_tokens
            self.request_rows.append({
                "id": r.id, "arrival_s": r.arrival_s, "prompt_tokens": r.prompt_tokens,
                "output_tokens": out, "admitted_s": rec["admitted_s"],
                "first_token_s": rec["first_token_s"], "finish_s": rec["finish_s"],
                "ttft_s": rec["first_token_s"] - r.arrival_s,
                "tpot_s": ((rec["finish_s"] - rec["first_token_s"]) / (out - 1)
                           if out > 1 else None),
                "latency_s": rec["finish_s"] - r.arrival_s})
        self.iterations = iterations
        self.costs = costs
        self.max_batch, self.memory_batch, self.kv_grid = max_batch, memory_batch, kv_grid

    @property
    def requests(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        return pd.DataFrame(self.request_rows)

    def saturation_tokens_per_s(self, batch: int) -> float:
        """The throughput ``batch`` requests of the workload's size allow:
        ``B O / ((O - 1) T_d(B) + B T_p)``, T_d at the requests' mean cache."""
        wl = self.workload
        o, p = wl.new_tokens, wl.seq_len
        policy = policy_of(wl)
        mean = sum(policy.cache(j) for j in range(1, o)) / (o - 1) if o > 1 else p
        kv = math.ceil(mean / self.kv_grid) * self.kv_grid
        t_d = self.costs.decode_s(batch, kv, p) if o > 1 else 0.0
        return batch * o / ((o - 1) * t_d + batch * self.costs.prefill_s(p))

    @property
    def totals(self) -> dict[str, Any]:
        rows = self.request_rows
        first = min(r["arrival_s"] for r in rows)
        end = max(r["finish_s"] for r in rows)
        tokens = sum(r["output_tokens"] for r in rows)
        ttft = [r["ttft_s"] for r in rows]
        tpot = [r["tpot_s"] for r in rows if r["tpot_s"] is not None]
        decode = [it for it in self.iterations if it[0] == "decode"]
        busy = sum(e - s for _, s, e, _ in decode)
        limit = min(self.max_batch or self.memory_batch, self.memory_batch) \
            if self.memory_batch else self.max_batch
        out = {
            "requests": len(rows), "generated_tokens": tokens,
            "makespan_s": end - first,
            "throughput_tokens_per_s": tokens / (end - first) if end > first else None,
            "request_rate_per_s": (len(rows) - 1) / (rows[-1]["arrival_s"] - first)
            if len(rows) > 1 and rows[-1]["arrival_s"] > first else None,
            "mean_batch": sum((e - s) * b for _, s, e, b in decode) / busy if busy else 0.0,
            "max_batch": self.max_batch, "memory_batch": self.memory_batch,
            "saturation_tokens_per_s": self.saturation_tokens_per_s(limit) if limit else None,
            "kv_grid_tokens": self.kv_grid,
        }
        for name, xs in (("ttft", ttft), ("tpot", tpot)):
            out[f"{name}_mean_s"] = sum(xs) / len(xs) if xs else None
            for q in (50, 90, 99):
                out[f"{name}_p{q}_s"] = percentile(xs, q) if xs else None
        return out

    def to_dict(self) -> dict[str, Any]:
        from .report.report import _plain  # noqa: PLC0415

        return _plain({"schema": "hwsim.serving/1", "workload": self.workload.to_dict(),
                       "target": self.target.to_dict(), "fidelity": self.fidelity,
                       "totals": self.totals, "requests": self.request_rows})

    def table(self) -> str:
        from .report.table import si  # noqa: PLC0415

        t = self.totals
        wl = self.workload
        lines = [
            f"{wl.name} served on {self.target.preset} ({self.target.name}): {t['requests']:,} "
            f"requests, fidelity {self.fidelity}",
            f"  throughput   {si(t['throughput_tokens_per_s'], 'token/s')} over "
            f"{si(t['makespan_s'], 's')}"
            + (f" (arrivals {si(t['request_rate_per_s'], 'req/s')})"
               if t["request_rate_per_s"] else ""),
            f"  TTFT         mean {si(t['ttft_mean_s'], 's')}, p50 {si(t['ttft_p50_s'], 's')}, "
            f"p90 {si(t['ttft_p90_s'], 's')}, p99 {si(t['ttft_p99_s'], 's')}",
            f"  TPOT         mean {si(t['tpot_mean_s'], 's')}, p50 {si(t['tpot_p50_s'], 's')}, "
            f"p90 {si(t['tpot_p90_s'], 's')}, p99 {si(t['tpot_p99_s'], 's')}",
            f"  batch        {t['mean_batch']:.1f} decoding on average; memory fits "
            f"{t['memory_batch']:,} requests of {wl.seq_len:,} + {wl.new_tokens:,} tokens"
            + (f", max_batch {t['max_batch']}" if t["max_batch"] else ""),
        ]
        if t["saturation_tokens_per_s"]:
            lines.append(f"  saturation   {si(t['saturation_tokens_per_s'], 'token/s')} "
                         f"(what the memory-limited batch allows)")
        return "\n".join(lines)
