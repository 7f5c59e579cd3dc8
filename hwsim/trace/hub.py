"""Where a model's config comes from, and where its traced templates are kept.

``model:`` in a workload (and ``hwsim trace MODEL``) names a model in one of
four ways, tried in this order:

1. a **zoo name** (``llama-3.1-8b``): a shipped template, or a zoo entry whose
   config ships in :mod:`hwsim.trace.configs`;
2. a **path** to a ``config.json`` (any file name: ``phi3-mini.json``) or to a
   folder holding one (a downloaded checkpoint's folder; the weights are never
   read);
3. a **Hugging Face model id** (``Qwen/Qwen2.5-7B``) whose config is already in
   the local Hugging Face cache, the folder ``huggingface_hub`` downloads into:
   ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub`` (``$XDG_CACHE_HOME`` replacing ``~/.cache``),
   as ``models--ORG--NAME/snapshots/<revision>/config.json``. hwsim never
   downloads: an id that is not there is an error that says where to put the
   file;
4. a **factory** ``package.module:function`` (:mod:`hwsim.trace.factory`).

Reading a config needs no torch, so the workload loader can check a config
model (its phases, its layers for pruning, its context limit) on a machine
without torch. Building and tracing it needs torch; the result is kept as a
template in the trace cache (``$HWSIM_CACHE_DIR``, else
``~/.cache/hwsim/traces``), in a file named by a hash of the config's content
and a hash of the tracing environment (torch and transformers versions and
:data:`TRACER_VERSION`), so a later run at any size, or from another path to
the same config, needs no tracing, and a new torch or tracer traces again.
Without torch, the newest template of that config from any environment is
used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import configs, hfconfig

# Bumped when the tracer's output changes: cached traces and templates made by an
# older tracer are not reused. 2: sdpa masks, nn.MultiheadAttention, config models.
TRACER_VERSION = 2

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ConfigSource:
    """A model defined by a config: what it was called, where it was read, what it says."""

    model: str  # as the user wrote it (absolute for a path)
    origin: str  # "zoo" (shipped in hwsim/trace/configs), "file" or "hub"
    path: str  # the file that was read
    config: dict = field(repr=False, hash=False, compare=False)
    digest: str = ""  # hfconfig.digest(config)

    @property
    def label(self) -> str:
        """A short file-safe name: the zoo name, the hub id, or the file's folder/stem."""
        if self.origin == "hub":
            name = self.model.replace("/", "--")
        elif self.origin == "zoo":
            name = self.model
        else:
            p = Path(self.path)
            name = p.parent.name if p.name == "config.json" and p.parent.name else p.stem
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "model"


# ---------------------------------------------------------------------- folders
def default_cache_dir() -> Path:
    """hwsim's trace cache: ``$HWSIM_CACHE_DIR``, else ``~/.cache/hwsim/traces``."""
    env = os.environ.get("HWSIM_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "hwsim" / "traces"


def hf_cache_dirs() -> list[Path]:
    """Hugging Face hub cache folders, in ``huggingface_hub``'s order of precedence."""
    dirs: list[Path] = []
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]).expanduser())
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    dirs.append(base / "huggingface" / "hub")
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def hub_config_path(model_id: str) -> Path | None:
    """``config.json`` of ``ORG/NAME`` in the local Hugging Face cache, or None.

    The revision ``refs/main`` points at wins; else the newest snapshot."""
    folder_name = "models--" + model_id.replace("/", "--")
    for cache in hf_cache_dirs():
        repo = cache / folder_name
        snapshots = repo / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            rev = ref.read_text(encoding="utf-8").strip()
            candidate = snapshots / rev / "config.json"
            if candidate.is_file():
                return candidate
        found = sorted((p for p in snapshots.glob("*/config.json") if p.is_file()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        if found:
            return found[0]
    return None


def hub_missing_message(model_id: str) -> str:
    """The one-line error for a hub id whose config is not in the local cache."""
    first = hf_cache_dirs()[0]
    folder = first / ("models--" + model_id.replace("/", "--")) / "snapshots" / "main"
    return (f"{model_id!r} is neither a zoo model, a config file nor a model in the local "
            f"Hugging Face cache, and hwsim never downloads: put its config.json at "
            f"{folder}/config.json (e.g. `huggingface-cli download {model_id} config.json` on a "
            f"machine with network, then copy the cache), or give the config.json's path")


# ---------------------------------------------------------------------- resolving
def looks_like_config(model: str) -> bool:
    """Whether ``model`` is meant as a config path or a hub id (not a zoo name or factory)."""
    if ":" in model and not os.path.exists(model):
        return False
    return (os.sep in model or "/" in model or model.endswith((".json", ".yaml", ".yml"))
            or os.path.exists(model))


def resolve(model: str, *, zoo_config: str | None = None) -> ConfigSource | None:
    """The config behind ``model``, or None when ``model`` is not a config model.

    ``zoo_config`` is the shipped config of a zoo entry (hwsim.trace.zoo_names).
    Raises :class:`InputError` when ``model`` reads as a path or hub id that
    cannot be found or read."""
    if zoo_config is not None:
        return _source(model, "zoo", configs.path(zoo_config), configs.load(zoo_config))
    if not looks_like_config(model):
        return None
    p = Path(model).expanduser()
    if p.is_dir():
        cfg_path = p / "config.json"
        if not cfg_path.is_file():
            raise InputError(f"folder {p} holds no config.json", field="model")
        return _source(str(cfg_path.resolve()), "file", cfg_path, read_config(cfg_path))
    if p.is_file():
        return _source(str(p.resolve()), "file", p, read_config(p))
    if _HUB_ID.match(model) and not model.endswith((".json", ".yaml", ".yml")):
        found = hub_config_path(model)
        if found is None:
            raise InputError(hub_missing_message(model), field="model")
        return _source(model, "hub", found, read_config(found))
    raise InputError(f"config file not found: {p}", field="model")


def _source(model: str, origin: str, path: Path, config: dict) -> ConfigSource:
    return ConfigSource(model, origin, str(path), config, hfconfig.digest(config))


def read_config(path: Path) -> dict[str, Any]:
    """A config.json (or a YAML of the same keys) as a dict; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the config: {e.strerror}", source=str(path)) from None
    if str(path).endswith((".yaml", ".yml")):
        import yaml  # noqa: PLC0415 - only for YAML configs

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"not valid YAML: {' '.join(str(e).split())}",
                             source=str(path)) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e}", source=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("expected a config.json object", source=str(path))
    if not isinstance(data.get("model_type"), str):
        raise InputError("expected a transformers config with a model_type (e.g. \"llama\")",
                         source=str(path), field="model_type")
    k = hfconfig.kind(data)
    if k == "encoder-decoder":
        raise InputError(f"{hfconfig.architecture(data) or data['model_type']} is an "
                         f"encoder-decoder model, which hwsim does not trace from a config "
                         f"(decoder LMs and encoders only); use a factory",
                         source=str(path), field="architectures")
    for key in ("hidden", "heads", "layers"):
        if hfconfig.headline(data)[key] is None:
            raise InputError(f"the config states no {key} (hidden_size, num_attention_heads, "
                             f"num_hidden_layers or their family's names)", source=str(path))
    return data


# ---------------------------------------------------------------------- template cache
def environment() -> dict[str, Any]:
    """The tracing environment a cached template depends on (no torch import:
    package metadata; a package that is not installed is None)."""
    env: dict[str, Any] = {"tracer": TRACER_VERSION}
    for pkg in ("torch", "transformers"):
        try:
            env[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            env[pkg] = None
    return env


def _env_digest() -> str:
    return hashlib.sha256(json.dumps(environment(), sort_keys=True).encode()).hexdigest()[:12]


def template_cache_path(source: ConfigSource, phase: str,
                        cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the template of ``source`` in ``phase`` is written for this environment:
    ``{label}.{phase}.template.{config digest}.t{tracer}.{environment digest}.json.gz``
    (the label is for people; lookups go by the digests)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / (f"{source.label}.{phase}.template.{source.digest}.t{TRACER_VERSION}."
                     f"{_env_digest()}.json.gz")


def cached_template_path(source: ConfigSource, phase: str,
                         cache_dir: str | os.PathLike | None = None) -> Path | None:
    """A cached template to use: this config's (from whatever path or id it was
    traced) made in this environment; without torch, the newest made by this
    tracer in any environment. None when there is none."""
    folder = template_cache_path(source, phase, cache_dir).parent
    if not folder.is_dir():
        return None
    env = environment()
    here = env["torch"] is not None and env["transformers"] is not None
    tail = _env_digest() if here else "*"  # with torch: trace rather than reuse another's
    pattern = f"*.{phase}.template.{source.digest}.t{TRACER_VERSION}.{tail}.json.gz"
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def image_template_path(model: str, phase: str, tag: str, source: ConfigSource | None = None,
                        cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the template of a vision-language model for the image ``tag``
    (:func:`hwsim.trace.images.tag`) is written for this environment:
    ``{label}.{phase}.{tag}.template.{key}.t{tracer}.{environment digest}.json.gz``,
    the key being the config's digest (a model from a config) or the zoo name's. An
    empty ``tag`` is a template that depends on no image (a multi-token decode step's,
    ``phase = "extend"``): ``{label}.{phase}.template...``."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    label, key = _image_key(model, source)
    return folder / (f"{label}.{_phase_tag(phase, tag)}.template.{key}.t{TRACER_VERSION}."
                     f"{_env_digest()}.json.gz")


def _phase_tag(phase: str, tag: str) -> str:
    return f"{phase}.{tag}" if tag else phase


def cached_image_template_path(model: str, phase: str, tag: str,
                               source: ConfigSource | None = None,
                               cache_dir: str | os.PathLike | None = None) -> Path | None:
    """A cached template of that image to use (as :func:`cached_template_path`), or None."""
    folder = image_template_path(model, phase, tag, source, cache_dir).parent
    if not folder.is_dir():
        return None
    env = environment()
    here = env["torch"] is not None and env["transformers"] is not None
    tail = _env_digest() if here else "*"
    _, key = _image_key(model, source)
    pattern = f"*.{_phase_tag(phase, tag)}.template.{key}.t{TRACER_VERSION}.{tail}.json.gz"
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def _image_key(model: str, source: ConfigSource | None) -> tuple[str, str]:
    if source is not None:
        return source.label, source.digest
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", model) or "model"
    return label, "zoo-" + hashlib.sha256(model.encode()).hexdigest()[:16]
