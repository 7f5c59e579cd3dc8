"""Whole requests: a prompt's prefill, then one decode step per further token.

A workload with ``phase: generate`` is a prompt of ``seq_len`` tokens (batch
``batch``) that produces ``new_tokens`` tokens: the prefill gives the first
(its latency is the time to first token, TTFT), then decode step ``j`` (1 to
``new_tokens - 1``) runs one token over the KV cache the request has by then,
``P + j - 1`` tokens for a dense cache of a ``P``-token prompt.

**KV policies.** A KV method among the workload's pruning steps decides that
cache step by step, and its machinery is costed where it runs
(:mod:`hwsim.pruning.kv`):

=============  ===============================  =====================================
method         cache before step j              machinery
=============  ===============================  =====================================
(none)         P + j - 1                        -
h2o, kvcrush   min(P + j - 1, B)                at the prompt's end: scores from its
                                                probabilities and a top-k to B (when
                                                P > B); each step: scores accumulate,
                                                a top-k evicts once the cache is full
streamingllm   min(P + j - 1, sinks + window)   each step: the cache's keys re-rotated
snapkv         min(P, B) + j - 1                at the prompt's end only: the window's
                                                votes, pooling, top-k, gathers
lazyllm        per layer: what the prefill      each step, at each pruning layer: the
               computed there, plus the rows    last token's scores over the layer
               of the steps so far              before, top-k; revived tokens' states
                                                read from the auxiliary cache
=============  ===============================  =====================================

B is ``tokens``, or ``keep`` of the prompt. The other methods act as they do
on a single forward: those that change the model (``heads``, ``layer-drop``,
``experts``, ``quant``) and sparse attention (``topk-attention``, ``hip``)
on the prefill and on every step. One-shot prompt pruning (FastV, HAWK,
DivPrune, TopV) runs in the prefill, and each layer's cache holds what reached
it, growing by one token a step (:func:`prompt_cache`). SpAtten's cascades
(:data:`CASCADES`) run in the prefill and again in every step, each step's
pass cutting the cache of ``P + j - 1`` tokens (its machinery, the accumulated
scores' top-k, costed each step). Zero-TPrune (a ViT's) is refused over a
generation with a one-line error.

**LazyLLM** (Fu et al. 2024, arXiv 2407.14057) prunes the prompt progressively in
the prefill; every step selects again at each pruning layer and may *revive* a
token pruned there: its hidden state comes from the auxiliary cache and it is
computed from that layer on, an extra query row of every later layer (that step
is a decode step of several tokens there: the model's ``extend`` template). How
many revive is data, so the step states it (``revive``: tokens per step at each
pruning layer, at most those pruned there and not yet revived; 0 by default).
:class:`LazySchedule` gives each step's cache and rows per layer; a run of steps
with equal rows grows its caches linearly and is bracketed like a growing cache.

**Steps simulated once, brackets in between.** A step's cost depends on its
cache length only (its other shapes are the same every step), so steps with
equal caches are simulated once: a full H2O cache makes every later step
identical. Where the cache grows, ``exact: true`` simulates each length;
otherwise the lengths are bracketed: both ends of the range are simulated,
and a bracket whose ends differ by more than ``step_error`` (relative, in
latency, energy and DRAM bytes) is halved until none does, or its ends are
neighbours. A step inside a bracket takes the linear interpolation of its
ends. More tokens never make a step cheaper (in event fidelity an invariant the
property tests hold every target to, ``tests/test_invariants.py``; a step's DRAM
bytes and energy grow with the cache it reads), so a step's true figure lies
between its bracket's ends, and the interpolation errs by at most ``step_error``
of it: that is the stated bound (0 with ``exact``). The analytical fidelity's
bound is not held to monotonicity and dips by a few hundredths of a percent
here and there (Tinyllama decode steps from 100 to 3,000 cached tokens: -0.02 %
on volta, -0.05 % on armv8, none on the others): there the bound is
``step_error`` plus such a dip.

The report (:class:`~hwsim.report.generation.GenerationReport`) keeps the
prefill's ops, one row per step, and the request's figures: TTFT, TPOT (mean
and percentiles), tokens per second, energy and DRAM bytes per token, KV
cache and peak memory over the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .errors import InputError
from .moe import expand as expand_moe
from .pruning.kv import snapkv_budget, streaming_cache
from .pruning.plan import kept
from .simulate import device_graph, load_with_sets, model_graphs, resolve_target, run_graph
from .workload import Workload, workload_from_dict

if TYPE_CHECKING:
    from .report import Report
    from .report.generation import GenerationReport
    from .targets import ResolvedTarget

KV_POLICIES = ("h2o", "kvcrush", "streamingllm", "snapkv")
# methods that prune the prompt's tokens once, in the prefill: each layer's cache holds
# what reached it, and the steps append to it
ONE_SHOT = ("fastv", "hawk", "divprune", "topv")
# SpAtten's cascades go on step by step: each decode step ranks the cache (or the heads)
# by the scores accumulated so far and cuts it, the prefill having cut the prompt
CASCADES = ("spatten", "spatten-heads")
# LazyLLM prunes the prompt progressively in the prefill, then selects again in every
# step, reviving pruned tokens from its auxiliary cache (:class:`LazySchedule`)
PROGRESSIVE = ("lazyllm",)
# a ViT's Zero-TPrune (no decode): not modelled over a generation
PER_STEP_PRUNING = ("zero-tprune",)
# whole numbers among them (interpolated values are rounded)
WHOLE = ("flops", "dense_flops", "executed_flops", "dram_read_bytes", "dram_write_bytes")
# the figures whose brackets are held to step_error
BRACKETED = ("latency_s", "energy_j", "dram_bytes")
MAX_EXACT = 65_536  # distinct steps an exact generation may simulate (about 30 ms each)


@dataclass(frozen=True)
class Policy:
    """The workload's KV policy: how many tokens the cache holds before each step."""

    method: str  # one of KV_POLICIES, or "" (a dense cache)
    prompt: int  # P, the prompt's tokens
    budget: int  # B (h2o, kvcrush, snapkv) or sinks + window (streamingllm); 0: none
    all_layers: bool  # the method acts on every layer (no ``layers`` list)
    carries: bool = False  # a prefill's token pruning leaves each layer its own cache
    lazy: bool = False  # LazyLLM: it selects again in every step (carries too)
    revive: int = 0  # LazyLLM: tokens each step revives at each pruning layer, at most

    def cache(self, j: int) -> int:
        """Tokens in the cache before decode step ``j`` (1-based)."""
        p, b = self.prompt, self.budget
        if self.method in ("h2o", "kvcrush", "streamingllm"):
            return min(p + j - 1, b) if self.all_layers else p + j - 1
        if self.method == "snapkv":
            return min(p, b) + j - 1
        return p + j - 1


def policy_of(wl: Workload) -> Policy:
    """The workload's KV policy, its steps checked for a generation."""
    found = [(i, s) for i, s in enumerate(wl.pruning) if s.get("method") in KV_POLICIES]
    shots = [(i, s) for i, s in enumerate(wl.pruning) if s.get("method") in ONE_SHOT]
    cascades = [(i, s) for i, s in enumerate(wl.pruning) if s.get("method") in CASCADES]
    lazy = [(i, s) for i, s in enumerate(wl.pruning) if s.get("method") in PROGRESSIVE]
    for i, s in enumerate(wl.pruning):
        if s.get("method") in PER_STEP_PRUNING:
            raise InputError(f"{s['method']} is not modelled over a generation (a ViT's token "
                             f"pruning: it has no decode); simulate its prefill, or use a KV "
                             f"policy ({', '.join(KV_POLICIES)}), a prompt pruning "
                             f"({', '.join(ONE_SHOT + PROGRESSIVE)}) or a cascade "
                             f"({', '.join(CASCADES)})", source=wl.source,
                             field=f"pruning.{i}.method")
    if lazy and (found or shots or cascades or len(lazy) > 1):
        i, s = lazy[-1] if len(lazy) > 1 else lazy[0]
        other = (found or shots or cascades or lazy)[0][1]["method"]
        raise InputError(f"lazyllm with {other}'s pruning over a generation is not modelled "
                         f"(LazyLLM selects each layer's tokens itself, step by step); give "
                         f"one of them", source=wl.source, field=f"pruning.{i}.method")
    if (shots or cascades) and found:
        i, s = found[0]
        other = (shots or cascades)[0][1]["method"]
        raise InputError(f"{s['method']} with {other}'s token pruning: a KV policy over a "
                         f"cache that differs per layer is not modelled over a generation "
                         f"yet", source=wl.source, field=f"pruning.{i}.method")
    if shots and cascades:
        i, s = cascades[0]
        raise InputError(f"{s['method']}'s cascade over {shots[0][1]['method']}'s pruned "
                         f"prompt is not modelled over a generation yet", source=wl.source,
                         field=f"pruning.{i}.method")
    if len(found) > 1:
        i, s = found[1]
        raise InputError(f"a generation runs one KV policy; {found[0][1]['method']} (pruning."
                         f"{found[0][0]}) and {s['method']} both manage the cache",
                         source=wl.source, field=f"pruning.{i}.method")
    p = wl.seq_len
    if lazy:
        return Policy("", p, 0, True, carries=True, lazy=True,
                      revive=int(lazy[0][1].get("revive", 0)))
    if not found:
        return Policy("", p, 0, True, carries=bool(shots))
    i, s = found[0]
    method = s["method"]
    if isinstance(s.get("keep"), list):
        raise InputError(f"{method} over a generation keeps one budget: give keep as one "
                         f"fraction of the prompt, or tokens (per-layer budgets are not "
                         f"modelled over a generation yet)", source=wl.source,
                         field=f"pruning.{i}.keep")
    all_layers = s.get("layers") is None
    if method == "snapkv":
        if not all_layers:
            raise InputError("snapkv over a generation compresses every layer's cache "
                             "(a layers list is not modelled over a generation yet)",
                             source=wl.source, field=f"pruning.{i}.layers")
        return Policy(method, p, snapkv_budget(p, s), True)
    if method == "streamingllm":
        return Policy(method, p, streaming_cache(s), all_layers)
    budget = int(s["tokens"]) if s.get("tokens") is not None else kept(p, float(s["keep"]))
    return Policy(method, p, budget, all_layers)


def decode_steps(wl: Workload, policy: Policy) -> list[dict]:
    """The pruning steps every decode step runs: the workload's, with an H2O or KVCrush
    budget in tokens (it was a fraction of the prompt), and no SnapKV nor one-shot
    prompt pruning (their selection ran in the prefill; the cache it left is the
    steps' cache)."""
    out = []
    for s in wl.pruning:
        s = dict(s)
        if s.get("method") == "snapkv" or s.get("method") in ONE_SHOT:
            continue
        if s.get("method") in ("h2o", "kvcrush"):
            s.pop("keep", None)
            s["tokens"] = policy.budget
        out.append(s)
    return out


def with_fields(wl: Workload, **fields: Any) -> Workload:
    """``wl`` with ``fields`` changed, checked again as a workload (the same source)."""
    data = wl.to_dict()
    data.pop("source", None)
    data.update(fields)
    return workload_from_dict(data, wl.source)


def phase_workload(wl: Workload, phase: str, seq_len: int, kv_len: int,
                   pruning: list) -> Workload:
    """The forward a generation runs: its prefill, or one of its decode steps (one token
    over ``kv_len`` cached), with ``pruning`` as the steps it applies."""
    data = wl.to_dict()
    for key in ("source", "new_tokens", "exact", "step_error"):
        data.pop(key, None)
    data.update(phase=phase, seq_len=seq_len, kv_len=kv_len, pruning=pruning)
    if phase == "decode":
        for key in ("image", "frames", "segments"):  # they sized and named the prompt
            data.pop(key, None)
        data["name"] = f"{wl.name}-step" if wl.name else "step"
    return workload_from_dict(data, wl.source)


def simulate_generation(wl: Workload, resolved: ResolvedTarget, *, fidelity: str = "event",
                        baseline: bool = False) -> GenerationReport:
    """Simulate a ``phase: generate`` workload (see the module docstring)."""
    from .progress import task  # noqa: PLC0415

    # one bar counting the forwards simulated (the prefill, then each distinct step)
    with task(f"generate on {resolved.preset}", unit="forward"):
        report = _run(wl, resolved, fidelity)
        if baseline:
            dense = with_fields(wl, pruning=[])  # the same request, unpruned
            report.baseline = _run(dense, resolved, fidelity)
    return report


def _run(wl: Workload, resolved: ResolvedTarget, fidelity: str) -> GenerationReport:
    from .progress import advance  # noqa: PLC0415
    from .report.generation import GenerationReport  # noqa: PLC0415

    policy = policy_of(wl)
    memo: dict = {}
    first = phase_workload(wl, "prefill", wl.seq_len, 0, list(wl.pruning))
    pruned, dense = model_graphs(first)
    graph = device_graph(pruned, first)
    prefill = run_graph(graph, resolved, first,
                        dense_flops=expand_moe(dense, first.routing, first.source).flops(),
                        fidelity=fidelity, memo=memo,
                        kv_cache_fraction=prefill_kv_fraction(policy, graph))
    advance()  # a forward more on the generation's progress bar
    steps = decode_steps(wl, policy)
    n_steps = wl.new_tokens - 1
    caches = [policy.cache(j) for j in range(1, n_steps + 1)]
    points: dict[int, Report] = {}
    kept = prompt_cache(pruned) if policy.carries else None
    lazy = LazySchedule.of(kept, policy.revive, n_steps) if policy.lazy else None

    def point(kv: int) -> dict[str, float]:
        step_wl = phase_workload(wl, "decode", 1, kv, steps)
        rows = None
        if lazy is not None:
            per_layer, rows = lazy.step(kv - wl.seq_len + 1, kv)
        else:
            per_layer = None if kept is None else [
                n + kv - wl.seq_len if n is not None else kv for n in kept]
        g_pruned, g_dense = model_graphs(step_wl, cache_tokens=per_layer, rows=rows)
        rep = run_graph(device_graph(g_pruned, step_wl), resolved, step_wl,
                        dense_flops=expand_moe(g_dense, step_wl.routing,
                                               step_wl.source).flops(),
                        fidelity=fidelity, memo=memo)
        points[kv] = rep
        advance()
        return _figures(rep)

    import numpy as np  # noqa: PLC0415

    distinct = sorted(set(caches))
    if wl.exact and len(distinct) > MAX_EXACT:
        raise InputError(f"exact: true would simulate {len(distinct):,} distinct steps (at most "
                         f"{MAX_EXACT:,}); bracket them instead (exact: false, step_error "
                         f"sets the bound)", source=wl.source, field="exact")
    if lazy is None:
        done = bracket(distinct, point, exact=wl.exact, step_error=wl.step_error)
    else:  # bracketed within each run of equal rows (a step's figures jump between runs)
        done = {}
        for first_j, last_j in lazy.runs():
            done.update(bracket(list(range(wl.seq_len + first_j - 1, wl.seq_len + last_j)),
                                point, exact=wl.exact, step_error=wl.step_error))
    columns = {"step": np.arange(1, n_steps + 1, dtype=np.int64),
               "kv_len": np.array(caches, dtype=np.int64)}
    if lazy is not None:
        columns["revived_tokens"] = lazy.revived_column()
    if n_steps:
        columns.update(interpolate(columns["kv_len"], done))
    columns["dense_flops"] = _dense_step_flops(wl, n_steps)
    columns["simulated"] = np.isin(columns["kv_len"], list(points))
    return GenerationReport(prefill, columns, points, workload=wl, fidelity=fidelity,
                            step_error=0.0 if wl.exact else wl.step_error)


@dataclass(frozen=True)
class LazySchedule:
    """LazyLLM's per-layer sizes over a generation's decode steps.

    The prefill leaves layer ``l`` the ``n_l`` prompt tokens it computed (fewer past
    each pruning layer). Before step ``j`` layer ``l`` caches ``c_l(j)`` tokens, and
    the step runs ``q_l(j)`` query rows there: the new token (``q = 1`` before the
    first pruning layer), plus at each pruning layer ``l`` (its predecessor ``k``)
    ``r_l = min(revive, c_k - c_l)`` tokens the selection revives from the
    auxiliary cache, computed from ``l`` on: ``q_l = q_k + r_l``. Every layer's cache
    grows by its rows, ``c_l(j + 1) = c_l(j) + q_l(j)``, so the pool a pruning layer
    can revive from, ``c_k - c_l``, shrinks by ``r_l`` a step until it is empty:
    a token is computed at most once per layer, and no layer caches more than the
    first, ``P + j - 1``. With ``revive = 0`` every layer's cache grows by one token
    a step. The rows change at a few steps only (a pool falls below ``revive``, then
    empties): between those, a *run*, the caches grow linearly, so a run's steps are
    bracketed as a growing cache is (:func:`bracket`).

    A step's attention at a layer reads that layer's whole cache (what it computed):
    the selection decides which pruned tokens come back, not a mask over the
    computed ones. A generated token runs every layer in its own step (it is the
    query), so a step writes nothing to the auxiliary cache; its selection's ops are
    :func:`hwsim.pruning.tokens.lazyllm_step`'s."""

    runs_: tuple  # (first step, last step, caches before the first, rows), per run
    layers: int

    @classmethod
    def of(cls, prompt: list[int | None], revive: int, n_steps: int) -> "LazySchedule":
        alive = [i for i, n in enumerate(prompt) if n is not None]
        c = {i: int(prompt[i]) for i in alive}
        pairs = list(zip(alive, alive[1:]))  # (the layer before, the layer)
        points = [(prev, at) for prev, at in pairs if c[at] < c[prev]]
        runs, j = [], 1
        while j <= n_steps:
            pools = {at: c[prev] - c[at] for prev, at in points}
            take = {at: min(revive, pool) for at, pool in pools.items()}
            rows = dict.fromkeys(alive, 1)
            for prev, at in pairs:
                rows[at] = rows[prev] + take.get(at, 0)
            # steps until a pool falls below revive (then what it gives changes)
            length = min([pool // revive if pool >= revive else 1
                          for at, pool in pools.items() if take[at] > 0] or [n_steps])
            length = min(length, n_steps - j + 1)
            runs.append((j, j + length - 1, dict(c), rows))
            for i in alive:
                c[i] += length * rows[i]
            j += length
        return cls(tuple(runs), len(prompt))

    def runs(self) -> list[tuple[int, int]]:
        """(first step, last step) of each run of equal rows."""
        return [(a, b) for a, b, _, _ in self.runs_]

    def step(self, j: int, kv: int) -> tuple[list[int], list[int]]:
        """(cache, rows) per layer of the pruned stack before step ``j``; a dropped
        layer takes ``kv`` and one row (it is not built)."""
        for a, b, c0, rows in self.runs_:
            if a <= j <= b:
                cache = [c0[i] + (j - a) * rows[i] if i in c0 else kv
                         for i in range(self.layers)]
                return cache, [rows.get(i, 1) for i in range(self.layers)]
        raise ValueError(f"step {j} is outside the generation")

    def revived_column(self):
        """Tokens each step revives (summed over its pruning layers), an array by step."""
        import numpy as np  # noqa: PLC0415

        parts = []
        for a, b, _, rows in self.runs_:
            alive = sorted(rows)
            revived = sum(rows[at] - rows[prev] for prev, at in zip(alive, alive[1:]))
            parts.append(np.full(b - a + 1, revived, dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def prompt_cache(prefill) -> list[int | None]:
    """The tokens each layer of a pruned prefill computed (its cache after the prompt),
    per layer of the pruned stack; None for a dropped layer."""
    from .pruning.plan import Plan  # noqa: PLC0415

    saved = prefill.header.get("pruning_plan")
    if not saved:
        return []
    return Plan.from_dict(saved).tokens_per_layer()


def prefill_kv_fraction(policy: Policy, graph) -> float:
    """The share of the prompt's KV cache a device holds at the prefill's peak. A KV
    policy's release cuts each layer's cache in that layer's attention forward (H2O's
    and SnapKV's ``update_kv`` run inside each layer's attention, StreamingLLM's
    cache keeps its window), so by the last layer the others hold their budget:
    ``((L - 1) min(B, P) + P) / (L P)`` of the whole prompt's cache, for L layers."""
    if not policy.method or not policy.all_layers or policy.budget >= policy.prompt:
        return 1.0
    from .capacity import kv_cache_ids  # noqa: PLC0415

    layers = max(1, len(kv_cache_ids(graph)) // 2)  # a key and a value cache per layer
    p, b = policy.prompt, policy.budget
    return ((layers - 1) * b + p) / (layers * p)


def _figures(rep: Report) -> dict[str, float]:
    t = rep.totals
    out = {k: t[k] for k in ("latency_s", "flops", "executed_flops", "dram_read_bytes",
                             "dram_write_bytes", "energy_j")}
    for c, v in t["energy_breakdown_j"].items():
        out[f"energy_{c}_j"] = v
    mem = rep.memory
    out["kv_cache_bytes"] = float(mem.get("kv_cache_bytes", 0.0))
    out["memory_bytes"] = float(mem.get("total_bytes", 0.0))
    return out


def _dense_step_flops(wl: Workload, n_steps: int):
    """The unpruned model's FLOPs at each decode step (its dense cache, P + j - 1 tokens),
    an array: affine in the cache length (attention's products grow by one key per
    step, the rest is fixed), so two builds give every step; a third checks the line,
    and a model whose steps are not affine is counted step by step."""
    import numpy as np  # noqa: PLC0415

    if n_steps <= 0:
        return np.zeros(0, dtype=np.int64)

    def flops(j: int) -> int:
        step = phase_workload(wl, "decode", 1, wl.seq_len + j - 1, [])
        _, dense = model_graphs(step)
        return expand_moe(dense, step.routing, step.source).flops()

    f1 = flops(1)
    fn = flops(n_steps) if n_steps > 1 else f1
    slope = (fn - f1) // max(1, n_steps - 1)
    affine = f1 + slope * (n_steps - 1) == fn and (
        n_steps <= 2 or flops(n_steps // 2 + 1) == f1 + slope * (n_steps // 2))
    if affine:
        return f1 + slope * np.arange(n_steps, dtype=np.int64)
    return np.array([flops(j) for j in range(1, n_steps + 1)], dtype=np.int64)


def bracket(lengths: list[int], simulate: Callable[[int], dict[str, float]], *,
            exact: bool, step_error: float) -> dict[int, dict[str, float]]:
    """The lengths to simulate and their figures: every one (``exact``), or the ends of
    brackets cut until the ends of each differ by at most ``step_error`` in each of
    :data:`BRACKETED` (module docstring); :func:`interpolate` gives the lengths
    between. ``lengths`` sorted and distinct; returns {length: figures}."""
    if not lengths:
        return {}
    if exact:
        return {n: simulate(n) for n in lengths}
    done: dict[int, dict[str, float]] = {}

    def get(n: int) -> dict[str, float]:
        if n not in done:
            done[n] = simulate(n)
        return done[n]

    index = {n: i for i, n in enumerate(lengths)}
    todo = [(lengths[0], lengths[-1])]
    while todo:
        a, b = todo.pop()
        fa, fb = get(a), get(b)
        if index[b] - index[a] <= 1:  # no length lies between the ends
            continue
        if not _close(fa, fb, step_error):
            mid = lengths[(index[a] + index[b]) // 2]
            todo.append((mid, b))
            todo.append((a, mid))
    return done


def interpolate(lengths, done: dict[int, dict[str, float]]) -> dict[str, Any]:
    """Each figure at each of ``lengths`` (a numpy array): the simulated value where it
    was simulated, else the linear interpolation between its bracket's ends (the
    neighbouring simulated lengths); whole numbers rounded."""
    import numpy as np  # noqa: PLC0415

    xs = np.array(sorted(done), dtype=float)
    first = done[int(xs[0])]
    out: dict[str, Any] = {}
    at = np.asarray(lengths, dtype=float)
    for key in first:
        ys = np.array([done[int(x)][key] for x in xs], dtype=float)
        v = np.interp(at, xs, ys)
        out[key] = np.rint(v).astype(np.int64) if key in WHOLE else v
    return out


def _close(fa: dict[str, float], fb: dict[str, float], step_error: float) -> bool:
    for key in BRACKETED:
        x, y = _metric(fa, key), _metric(fb, key)
        lo = min(x, y)
        if abs(y - x) > step_error * lo or (lo <= 0 < max(x, y)):
            return False
    return True


def _metric(f: dict[str, float], key: str) -> float:
    if key == "dram_bytes":
        return f["dram_read_bytes"] + f["dram_write_bytes"]
    return f[key]


def max_batch(workload: Workload | str, target: str | ResolvedTarget | None = None, *,
              sets=(), limit: int = 65_536, prefill_together: bool = False) -> int:
    """The largest batch of this request that fits one device's memory.

    The batch decodes together; its last decode step (the largest cache) must fit.
    Its prompts are prefilled one at a time, as a serving engine admits requests
    (vLLM, TGI): while one prompt's prefill runs at its peak (its cache as the KV
    policy leaves it then, :func:`prefill_kv_fraction`, and its activations), the
    others hold the cache the policy left them after theirs. With
    ``prefill_together`` the whole batch's prefill must fit at once instead (a
    static batch prefilled together, as ``simulate`` times it). 0 when one sequence
    does not fit; ``limit`` when that many do (or the target states no capacity).
    Memory only: nothing is lowered."""

    wl, target_sets = load_with_sets(workload, sets)
    resolved = resolve_target(target, wl, target_sets)
    if wl.phase != "generate":
        raise InputError(f"max_batch sizes a generation (phase: generate), got phase "
                         f"{wl.phase}", source=wl.source, field="phase")
    t, spec = resolved.target, resolved.spec
    cap = t.capacity_bytes(spec)
    policy = policy_of(wl)
    steps = decode_steps(wl, policy)

    def sized(batch: int) -> Workload:
        return with_fields(wl, batch=batch)

    def prefill_peak(one: Workload) -> float:
        first = phase_workload(one, "prefill", one.seq_len, 0, list(one.pruning))
        g = device_graph(model_graphs(first)[0], first)
        fp = t.footprint(g, spec, first.tiling)
        return fp.total_bytes - fp.kv_cache_bytes * (1.0 - prefill_kv_fraction(policy, g))

    lazy = None
    if policy.lazy:  # LazyLLM's caches differ per layer (the prefill's, then its schedule)
        first = phase_workload(wl, "prefill", wl.seq_len, 0, list(wl.pruning))
        lazy = LazySchedule.of(prompt_cache(model_graphs(first)[0]), policy.revive,
                               max(1, wl.new_tokens - 1))

    def step_fp(one: Workload, j: int):
        step = phase_workload(one, "decode", 1, policy.cache(j), steps)
        cache, rows = lazy.step(j, policy.cache(j)) if lazy is not None else (None, None)
        graph = model_graphs(step, cache_tokens=cache, rows=rows)[0]
        return t.footprint(device_graph(graph, step), spec, step.tiling)

    single = sized(1)
    alone = prefill_peak(single)
    kv_left = step_fp(single, 1).kv_cache_bytes  # what one sequence keeps after its prefill

    def need(batch: int) -> float:
        one = sized(batch)
        total = prefill_peak(one) if prefill_together else alone + (batch - 1) * kv_left
        if one.new_tokens > 1:
            total = max(total, step_fp(one, one.new_tokens - 1).total_bytes)
        return total

    if not cap:
        return limit
    if need(1) > cap:
        return 0
    lo, hi = 1, 2
    while hi <= limit and need(hi) <= cap:
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:  # need(lo) fits, need(hi) does not (or hi is past the limit)
        mid = (lo + hi) // 2
        if need(mid) <= cap:
            lo = mid
        else:
            hi = mid
    return lo
