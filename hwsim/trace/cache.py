"""Traces and templates made on the fly, kept on disk.

With torch installed, a workload may ask for a size or a model that no shipped
template covers; :func:`cached_trace` traces it once and keeps the graph as
gzip JSON (:func:`hwsim.ir.save`). The file name carries the size and a hash of
everything that determines the graph: model, phase, batch, seq_len, kv_len,
dtype, the torch and transformers versions, :data:`TRACER_VERSION` (bumped when
the tracer's output changes) and, for a user factory, the factory module's file
size and modification time. A file that cannot be read is traced again.

A model given by its config (a ``config.json`` path or a cached Hugging Face
id, :mod:`hwsim.trace.hub`) is traced once into a *template*
(:func:`cached_template`), so that every later run, at any size, instantiates
it without torch; the file is named by a hash of the config's content and of
the tracing environment (:func:`hwsim.trace.hub.template_cache_path`).

The cache folder is ``$HWSIM_CACHE_DIR`` if set, else ``~/.cache/hwsim/traces``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

from ..errors import InputError
from ..ir import Graph, load, save
from .api import trace, versions
from .factory import cwd_importable, is_factory
from .hub import (
    TRACER_VERSION,
    ConfigSource,
    cached_image_template_path,
    cached_template_path,
    default_cache_dir,
    image_template_path,
    resolve,
    template_cache_path,
)
from .zoo_names import ZOO

__all__ = ["TRACER_VERSION", "cache_path", "cached_image_template", "cached_template",
           "cached_trace", "default_cache_dir"]


def cache_path(model: str, *, seq_len: int, phase: str, kv_len: int, batch: int, dtype: str,
               cache_dir: str | os.PathLike | None = None,
               image: tuple[int, int] | None = None, frames: int = 0) -> Path:
    """Where the trace of this model and size (and image: another image is another
    graph) is kept."""
    key = {"model": model, "phase": phase, "batch": batch, "seq_len": seq_len,
           "kv_len": kv_len, "dtype": dtype, "tracer": TRACER_VERSION, **versions()}
    if image is not None or frames:
        key["image"] = list(image) if image else None
        key["frames"] = frames
    if is_factory(model):
        key["source"] = _source_stamp(model)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    name = f"{safe}.{phase}.b{batch}.s{seq_len}.kv{kv_len}.{dtype}.{digest}.json.gz"
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / name


def _source_stamp(model: str) -> list[int]:
    module = model.partition(":")[0]
    try:
        with cwd_importable():
            spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not os.path.exists(spec.origin):
        return []
    st = os.stat(spec.origin)
    return [st.st_size, st.st_mtime_ns]


def cached_trace(model: str, *, seq_len: int, phase: str = "prefill", kv_len: int = 0,
                 batch: int = 1, dtype: str = "fp16",
                 cache_dir: str | os.PathLike | None = None,
                 image: tuple[int, int] | None = None, frames: int = 0) -> Graph:
    """:func:`hwsim.trace.trace` with an on-disk cache (see the module docstring)."""
    path = cache_path(model, seq_len=seq_len, phase=phase, kv_len=kv_len, batch=batch,
                      dtype=dtype, cache_dir=cache_dir, image=image, frames=frames)
    if path.exists():
        try:
            return load(path)
        except InputError:
            pass  # unreadable (an interrupted write): trace again
    graph = trace(model, seq_len=seq_len, phase=phase, kv_len=kv_len, batch=batch, dtype=dtype,
                  image=image, frames=frames)
    save(graph, path)
    return graph


def cached_template(source: ConfigSource, phase: str,
                    cache_dir: str | os.PathLike | None = None) -> Graph:
    """The template of config model ``source`` in ``phase``: read from the cache, or
    traced (:func:`hwsim.trace.template.trace_template`) and written there."""
    from .template import trace_template  # noqa: PLC0415 - template imports api too

    found = cached_template_path(source, phase, cache_dir)
    if found is not None:
        try:
            return load(found)
        except InputError:
            pass  # unreadable (an interrupted write): trace again
    template = trace_template(source.model, phase)
    save(template, template_cache_path(source, phase, cache_dir))
    return template


def cached_image_template(model: str, phase: str, image: tuple[int, int] | None,
                          frames: int = 0, cache_dir: str | os.PathLike | None = None) -> Graph:
    """The template of vision-language ``model`` for ``image``/``frames`` (not its
    default image): read from the cache, or traced and written there. The file is
    keyed by the image's processed size (:func:`hwsim.trace.images.tag`)."""
    from . import images  # noqa: PLC0415
    from .template import trace_template  # noqa: PLC0415 - template imports api too
    from .zoo import vision_rule  # noqa: PLC0415

    entry = ZOO.get(model)
    source = resolve(model, zoo_config=entry.get("config")) if entry is None or "config" in entry \
        else None  # a zoo family without a config (LLaVA-1.5) is keyed by its name
    rule = vision_rule(model)
    tag = images.tag(rule, image, frames) if rule is not None and phase == "prefill" else ""
    found = cached_image_template_path(model, phase, tag, source, cache_dir)
    if found is not None:
        try:
            return load(found)
        except InputError:
            pass  # unreadable (an interrupted write): trace again
    template = trace_template(model, phase, image=image, frames=frames)
    save(template, image_template_path(model, phase, tag, source, cache_dir))
    return template
