"""The model zoo as the simulator sees it, without torch.

A workload's ``model:`` is one of:

- a **zoo model** with a shipped template in ``traces/``
  (``{model}.{phase}.json.gz``; a decode step of several new tokens has its own,
  ``{model}.extend.json.gz``, :func:`extend_template`): the torch-free truth
  about which models and phases exist; the headers give the number of layers, the token segments and
  the layer stacks. The tracer's zoo (:mod:`hwsim.trace.zoo_names`, plain data)
  may know more, which are traced on the fly when torch is installed;
- a **model from a config**: a path to a ``config.json`` (or a folder holding
  one) or a Hugging Face id whose config is in the local Hugging Face cache
  (:mod:`hwsim.trace.hub`, which never downloads). Its phases, layers and
  context limit come from the config itself; its graph is a template traced
  once (with torch) and kept in hwsim's trace cache, so any later run, at any
  size, instantiates it without torch.

Every model also has a **context limit** (:func:`context_limit`): the
positions it handles, from the zoo's dims, the config (with its RoPE scaling:
Llama-3.1's 131,072) or a traced graph's header. A workload that runs past it
is simulated all the same (the graph is the same arithmetic) but gets a
warning (:func:`context_warnings`): its positions beyond the limit are
extrapolated, which the model was not trained for.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .errors import InputError
from .ir import Graph, load
from .trace import hfconfig, hub, images
from .trace import zoo_names as tracer_zoo


def traces_dirs() -> list[Path]:
    """Where shipped templates are looked for, in order."""
    dirs = []
    env = os.environ.get("HWSIM_TRACES")
    if env:
        dirs.append(Path(env))
    package = Path(__file__).resolve().parent  # (hwsim/)
    root = package.parent
    if (root / "pyproject.toml").is_file():  # a source checkout, not site-packages, whose
        dirs.append(root / "traces")  # "traces" folder could belong to any distribution
    dirs.append(package / "_traces")  # packaged copy in a wheel
    return [d for d in dirs if d.is_dir()]


_IMAGE_TAG = re.compile(r"^[0-9]+x[0-9]+(-f[0-9]+)?$")


@functools.lru_cache(maxsize=None)
def _shipped() -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for d in traces_dirs():
        for p in sorted(d.glob("*.json.gz")):
            stem = p.name[: -len(".json.gz")]
            model, dot, phase = stem.rpartition(".")
            if dot and phase in ("prefill", "decode", tracer_zoo.EXTEND):
                out.setdefault(model, {}).setdefault(phase, p)
                continue
            # a vision-language model's other image: {model}.{phase}.{tag}.json.gz
            model, dot, phase = model.rpartition(".")
            if dot and phase in ("prefill", "decode") and _IMAGE_TAG.match(stem.rpartition(".")[2]):
                out.setdefault(model, {}).setdefault(f"{phase}.{stem.rpartition('.')[2]}", p)
    return out


def _tracer_zoo() -> dict[str, tuple[str, ...]]:
    """Models the tracer's zoo knows (plain data: no torch needed)."""
    return {name: tuple(tracer_zoo.phases(name)) for name in tracer_zoo.ZOO_NAMES}


def names() -> list[str]:
    """The zoo: models with a shipped template or a tracer zoo entry."""
    return sorted(set(_shipped()) | set(_tracer_zoo()))


def in_zoo(model: str) -> bool:
    return model in _shipped() or model in tracer_zoo.ZOO


# ---------------------------------------------------------------------- configs
def config_source(model: str) -> hub.ConfigSource | None:
    """The config behind ``model`` (a zoo model built from a shipped config, a
    config path or a cached hub id), or None. Raises :class:`InputError` for a
    path or hub id that cannot be found or read."""
    entry = tracer_zoo.ZOO.get(model)
    if entry is not None:
        return hub.resolve(model, zoo_config=entry["config"]) if "config" in entry else None
    if model in _shipped():
        return None
    return _resolve(model, *_stamp(model))


def _stamp(model: str) -> tuple[int, int]:
    """(size, mtime) of a config path, so an edited file is read again."""
    p = Path(model).expanduser()
    if p.is_dir():
        p = p / "config.json"
    try:
        st = p.stat()
    except OSError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _resolve(model: str, _size: int, _mtime: int) -> hub.ConfigSource | None:
    return hub.resolve(model)


def model_problem(model: str) -> str | None:
    """Why ``model`` cannot be used (None when it can): the resolver's message for a
    config path or hub id, "" for a name that is nothing at all (the caller lists
    the zoo)."""
    if in_zoo(model):
        return None
    try:
        source = config_source(model)
    except InputError as e:
        return e.problems[0].message
    return None if source is not None else ""


def is_known(model: str) -> bool:
    return model_problem(model) is None


def phases(model: str) -> tuple[str, ...]:
    shipped = tuple(_shipped().get(model, {}))
    known = set(shipped) | set(_tracer_zoo().get(model, ()))
    if not known and not in_zoo(model):
        try:
            source = config_source(model)
        except InputError:
            source = None
        if source is not None:
            known = set(hfconfig.phases(source.config))
    return tuple(p for p in ("prefill", "decode") if p in known)


def shipped_path(model: str, phase: str, tag: str = "") -> Path | None:
    """The shipped template of ``model`` in ``phase``; ``tag`` names a vision-language
    model's image other than its default (:func:`hwsim.trace.images.tag`)."""
    return _shipped().get(model, {}).get(f"{phase}.{tag}" if tag else phase)


def shipped_tags(model: str, phase: str) -> list[str]:
    """The images a vision-language model's shipped ``phase`` templates cover
    (``""``: the default image)."""
    return sorted(k.partition(".")[2] for k in _shipped().get(model, {})
                  if k.partition(".")[0] == phase)


# ---------------------------------------------------------------------- images
def vision_inputs(model: str) -> images.VisionInputs | None:
    """How ``model`` reads images (:mod:`hwsim.trace.images`); None for a model
    that takes none (or that cannot be resolved)."""
    entry = tracer_zoo.ZOO.get(model)
    if entry is not None and "vision" in entry:
        return images.RULES.get(entry["vision"])
    try:
        source = config_source(model)
    except InputError:
        return None
    if source is None or hfconfig.kind(source.config) != "vision-language":
        return None
    return images.rule_for_config(source.config)


def image_tag(model: str, phase: str, image: tuple[int, int] | None, frames: int = 0) -> str:
    """The template tag of ``image``/``frames`` for ``model`` in ``phase`` ("" for the
    default image, and for a decode step, which is one language-model step)."""
    rule = vision_inputs(model)
    if rule is None or phase != "prefill":
        return ""
    return images.tag(rule, image, frames)


# ---------------------------------------------------------------------- templates
def template(model: str, phase: str, image: tuple[int, int] | None = None,
             frames: int = 0) -> Graph | None:
    """The size template of ``model`` in ``phase``: shipped, or (a config model)
    cached, or traced now and cached (needs torch). None for a zoo model without
    a shipped template (the workload builder traces it at its size).

    A vision-language model's prefill depends on its ``image`` (``(height, width)``
    px; None: the model's default) and ``frames``: another image's template is
    shipped as ``{model}.{phase}.{tag}.json.gz`` or traced once into the trace
    cache (needs torch; without it, an error listing the shipped images).

    ``phase = "extend"`` is a decode step of several new tokens per sequence
    (``seq_len > 1``): shipped as ``{model}.extend.json.gz``, else traced once into
    the trace cache (:func:`extend_template`)."""
    if phase == tracer_zoo.EXTEND:
        return extend_template(model)
    tag = image_tag(model, phase, image, frames)
    path = shipped_path(model, phase, tag)
    if path is not None:
        return _load(str(path))
    if tag:
        return _image_template(model, phase, image, frames, tag)
    if in_zoo(model):
        return None
    source = config_source(model)
    if source is None:
        return None
    return _config_template(source, phase)


def _cached(model: str, phase: str, tag: str) -> Graph | None:
    """A template traced before into the trace cache, or None (absent or unreadable:
    the caller traces it again)."""
    source = config_source(model)  # None for a zoo family without a config (LLaVA-1.5)
    path = hub.cached_image_template_path(model, phase, tag, source)
    if path is None:
        return None
    try:
        return _load(str(path))
    except InputError:
        return None


def _image_template(model: str, phase: str, image: tuple[int, int] | None, frames: int,
                    tag: str) -> Graph:
    """The template of a vision-language model's non-default image: from the trace
    cache, else traced there (torch)."""
    cached = _cached(model, phase, tag)
    if cached is not None:
        return cached
    try:
        from .trace.cache import cached_image_template  # noqa: PLC0415 - needs torch
    except ImportError:
        shipped = [t or "the default image" for t in shipped_tags(model, phase)]
        rule = vision_inputs(model)
        default = "x".join(map(str, rule.canonical(None))) if rule else "?"
        raise InputError(f"no template of {model} ({phase}) for a {tag} image (after the "
                         f"processor's resize) and torch is not installed to trace it once: "
                         f"shipped images: {', '.join(shipped) or 'none'} (default "
                         f"{default}); install torch (pip install 'hwsim[trace]') to trace "
                         f"other sizes (cached, later runs need no torch) or ship one with "
                         f"python -m hwsim.trace.ship --models {model} --image HxW",
                         field="image") from None
    return cached_image_template(model, phase, image, frames)


@functools.lru_cache(maxsize=16)
def extend_template(model: str) -> Graph:
    """The template of ``model``'s decode step of several new tokens (``seq_len >= 1``
    rows per sequence, :mod:`hwsim.trace.template`): shipped, else from the trace
    cache, else traced there once (needs torch; without it, a one-line error)."""
    path = shipped_path(model, tracer_zoo.EXTEND)
    if path is not None:
        return _load(str(path))
    cached = _cached(model, tracer_zoo.EXTEND, "")
    if cached is not None:
        return cached
    try:
        from .trace.cache import cached_image_template  # noqa: PLC0415 - needs torch
    except ImportError:
        name = tracer_zoo.template_path(model, tracer_zoo.EXTEND)
        raise InputError(f"no template of {model} for a decode step of several tokens "
                         f"(seq_len > 1): none shipped ({name}) and torch is not installed "
                         f"to trace it once (pip install 'hwsim[trace]'; later runs need no "
                         f"torch), or ship it: "
                         f"python -m hwsim.trace.ship --models {model} --phases extend",
                         field="seq_len") from None
    return cached_image_template(model, tracer_zoo.EXTEND, None)


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Graph:
    return load(path)


def _clear_template_caches() -> None:
    """Forget loaded templates and resolved configs (tests that swap $HWSIM_TRACES)."""
    _load.cache_clear()
    extend_template.cache_clear()
    _config_template_cached.cache_clear()
    _resolve.cache_clear()


template.cache_clear = _clear_template_caches  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=16)
def _config_template_cached(source: hub.ConfigSource, phase: str) -> Graph:
    cached = hub.cached_template_path(source, phase)
    if cached is not None:
        try:
            return load(cached)
        except InputError:
            pass  # unreadable: trace again below
    try:
        from .trace.cache import cached_template  # noqa: PLC0415 - needs torch
    except ImportError:
        raise InputError(f"no cached template of {source.model} ({phase}) and torch is not "
                         f"installed to trace it once (pip install 'hwsim[trace]'; later runs "
                         f"then need no torch)", field="model") from None
    return cached_template(source, phase)


def _config_template(source: hub.ConfigSource, phase: str) -> Graph:
    if phase not in hfconfig.phases(source.config):
        raise InputError(f"model {source.model} ({hfconfig.kind(source.config)}) has no "
                         f"{phase} phase", field="phase")
    return _config_template_cached(source, phase)


def _any_template(model: str) -> Graph | None:
    for phase in ("prefill", "decode"):
        path = shipped_path(model, phase)
        if path is not None:
            return _load(str(path))
    return None


def num_layers(model: str) -> int | None:
    """Layers of the stack pruning acts on: the language model's when there are several."""
    g = _any_template(model)
    if g is None:
        facts = headline(model)
        return facts.get("layers") if facts else None
    stacks = g.header.get("stacks") or {}
    for name in ("language", "decoder", "encoder"):
        if name in stacks:
            return int(stacks[name]["num_layers"])
    return g.num_layers


def segments(model: str) -> dict:
    g = _any_template(model)
    if g is None:
        return {}
    return {k: v for k, v in (g.header.get("segments") or {}).items()}


# ---------------------------------------------------------------------- facts
def headline(model: str) -> dict[str, Any] | None:
    """The shape of ``model`` (layers, heads, kv_heads, hidden, ffn, experts, vocab,
    max_positions, ...; see :func:`hwsim.trace.hfconfig.headline`), without torch."""
    entry = tracer_zoo.ZOO.get(model)
    if entry is not None and "config" not in entry:
        dims = dict(entry["dims"])
        out: dict[str, Any] = {
            "kind": "causal-lm" if "decode" in entry["phases"] else "encoder",
            "layers": dims.get("layers"), "hidden": dims.get("hidden"),
            "heads": dims.get("heads"), "kv_heads": dims.get("kv_heads", dims.get("heads")),
            "head_dim": (dims["hidden"] // dims["heads"]) if dims.get("heads") else None,
            "ffn": dims.get("ffn"), "vocab": dims.get("vocab"), "experts": None,
            "experts_per_token": None, "max_positions": dims.get("max_positions"),
            "context_source": "the model's position table" if dims.get("max_positions")
            else "no position limit (the position table is made for the size traced)",
            "window": 0, "rope_scaling": None}
        if "vision" in dims:
            out["kind"] = "vision-language"
            out["vision_layers"] = dims["vision"]["layers"]
            out["vision_hidden"] = dims["vision"]["hidden"]
        return out
    try:
        source = config_source(model)
    except InputError:
        return None
    if source is not None:
        return hfconfig.headline(source.config)
    g = _any_template(model)
    if g is not None:
        cfg = dict(g.header.get("config") or {})
        return {**cfg, "context_source": "the template's header"} if cfg else None
    return None


def template_source(model: str) -> str:
    """Where the templates of ``model`` come from: ``shipped``, ``cached`` (a config
    model traced before) or ``traced on demand`` (needs torch, once)."""
    have = [p for p in phases(model) if shipped_path(model, p)]
    if have and len(have) == len(phases(model)):
        return "shipped"
    try:
        source = config_source(model) if not have else None
    except InputError:
        source = None
    if source is not None and all(hub.cached_template_path(source, p)
                                  for p in hfconfig.phases(source.config)):
        return "cached"
    return "shipped, rest traced on demand" if have else "traced on demand"


def context_limit(model: str = "", header: Mapping[str, Any] | None = None,
                  ) -> tuple[int | None, str]:
    """(positions ``model`` handles, why); from a graph ``header`` when no model is
    named (a ``trace:`` workload). ``(None, why)`` when nothing states a limit."""
    facts = headline(model) if model else None
    if facts is None and header is not None:
        facts = {**dict(header.get("config") or {}), "context_source": "the trace's header"}
    if not facts or not facts.get("max_positions"):
        return None, "no stated limit"
    return int(facts["max_positions"]), str(facts.get("context_source", ""))


def context_warnings(wl: Any, header: Mapping[str, Any] | None = None) -> list[str]:
    """Warnings for a workload (``model``/``trace``, ``phase``, ``seq_len``,
    ``kv_len``) whose sequence is longer than its model's context."""
    if getattr(wl, "ops", None):
        return []
    model = getattr(wl, "model", "") or ""
    tokens = int(wl.seq_len) + (int(wl.kv_len) if wl.phase == "decode" else 0) \
        + (int(wl.new_tokens) - 1 if wl.phase == "generate" else 0)
    limit, why = context_limit(model, header)
    if limit is None or tokens <= limit:
        return []
    name = model or (header or {}).get("model") or "the model"
    what = f"{wl.kv_len:,} cached + {wl.seq_len:,} new" if wl.phase == "decode" else \
        f"{wl.seq_len:,} prompt + {wl.new_tokens - 1:,} generated" if wl.phase == "generate" \
        else f"{wl.seq_len:,} prompt"
    return [f"{tokens:,} tokens ({what}) exceed the context of {name}: {limit:,} positions "
            f"({why}); positions past it are extrapolated, which the model was not trained for"]


# the floating-point types a template is retyped among (with_dtype)
FLOAT_DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8")


def template_of(header: dict) -> Graph | None:
    """The size template a graph was instantiated from (typed as it was), or None."""
    ref = header.get("template_ref") or {}
    if "model" in ref:
        image = tuple(ref["image"]) if ref.get("image") else None
        tmpl = template(ref["model"], ref.get("phase", "prefill"), image,  # type: ignore
                        ref.get("frames", 0))
    elif "trace" in ref:
        path = ref["trace"]
        tmpl = _load_template(path, os.path.getmtime(path)) if os.path.exists(path) else None
    else:
        return None
    if tmpl is None:
        return None
    return with_dtype(tmpl, ref["dtype"]) if ref.get("dtype") else tmpl


@functools.lru_cache(maxsize=8)
def _load_template(path: str, _mtime: float) -> Graph | None:
    graph = load(path)
    return graph if graph.is_template else None


def with_dtype(graph: Graph, dtype: str) -> Graph:
    """Floating-point tensors retyped to ``dtype``; others unchanged."""
    if all(t.dtype == dtype or t.dtype not in FLOAT_DTYPES for t in graph.tensors.values()):
        return graph
    tensors = [replace(t, dtype=dtype) if t.dtype in FLOAT_DTYPES else t
               for t in graph.tensors.values()]
    return Graph(graph.header, tensors, graph.ops)
