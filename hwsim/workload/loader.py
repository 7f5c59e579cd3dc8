"""Reading and checking workload YAML files.

:func:`load_workload` reads a file with ``yaml.safe_load``, applies ``--set``
overrides, and checks every field against :mod:`hwsim.workload.schema`,
collecting all problems (unknown keys, wrong types, impossible values, a segment
past the sequence, an unknown model or pruning method) before raising one
:class:`~hwsim.errors.InputError` that names the file and the fields.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from typing import Any, Mapping

from .. import yamlfile, zoo
from ..errors import Collector, InputError
from ..ir.dtypes import is_known
from ..ir.graph import MAX_REPEAT
from ..ir.kinds import FN_FLOPS, MAX_SIZE, MOE_ACTS, REDUCE_FNS
from ..moe import check_routing
from ..pruning import check_step
from ..spec import suggest
from ..trace import images
from ..yamlfile import resolve_path
from . import shipped
from .overrides import apply_sets, label
from .schema import OP_COMMON, OP_PARAMS, Tiling, Workload


def read_yaml(path: str) -> Any:
    return yamlfile.read(path, "workload file")


def load_workload(path: str | os.PathLike, sets: list[tuple[str, Any]] = ()) -> Workload:
    """Read, override and check a workload file: a path, or the name of a shipped
    workload (``bert-base``; :mod:`hwsim.workload.shipped`)."""
    path = shipped.find(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("expected a mapping of workload fields", source=path)
    sets = list(sets)
    data = label(apply_sets(data, sets), sets,
                 default=os.path.splitext(os.path.basename(path))[0])
    return workload_from_dict(data, path)


def workload_from_dict(data: Mapping[str, Any], source: str = "<workload>") -> Workload:
    errs = Collector(source)
    wl_fields = {f.name: f for f in fields(Workload) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in data.items():
        f = wl_fields.get(key)
        if f is None:
            errs.add(str(key), "unknown key" + suggest(str(key), wl_fields))
            continue
        if key == "tiling":
            values[key] = _tiling(value, errs)
            continue
        checked = _check_type(value, f.type, f.metadata.get("choices"), key, errs)
        if checked is not None:
            values[key] = checked
    if values.get("model"):
        values["model"] = model_path(values["model"], source)
    _vision(values, data, errs)
    wl = Workload(**values, source=source)
    _check_semantics(wl, errs, data)
    errs.raise_if_any()
    return wl


_TYPES = {"str": str, "int": int, "list": list, "dict": dict, "bool": bool, "float": float}


def _check_type(value: Any, type_name: Any, choices, field: str, errs: Collector) -> Any:
    want = _TYPES.get(type_name if isinstance(type_name, str) else type_name.__name__)
    if want is int and (isinstance(value, bool) or not isinstance(value, int)):
        errs.add(field, f"expected an integer, got {value!r}")
        return None
    if want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            errs.add(field, f"expected a finite number, got {value!r}")
            return None
        return float(value)
    if want is not int and want is not None and not isinstance(value, want):
        errs.add(field, f"expected {'a mapping' if want is dict else 'a ' + want.__name__}, "
                 f"got {value!r}")
        return None
    if choices and value not in choices:
        errs.add(field, f"expected one of {', '.join(choices)}, got {value!r}")
        return None
    return value


def _tiling(value: Any, errs: Collector) -> Tiling:
    if not isinstance(value, dict):
        errs.add("tiling", f"expected a mapping, got {value!r}")
        return Tiling()
    tf = {f.name: f for f in fields(Tiling)}
    out = {}
    for key, v in value.items():
        f = tf.get(key)
        if f is None:
            errs.add(f"tiling.{key}", "unknown key" + suggest(str(key), tf))
            continue
        checked = _check_type(v, f.type, f.metadata.get("choices"), f"tiling.{key}", errs)
        if checked is not None:
            if f.type == "int" and checked < 0:
                errs.add(f"tiling.{key}", f"must be >= 0, got {checked}")
                continue
            out[key] = checked
    return Tiling(**out)


def _check_semantics(wl: Workload, errs: Collector, raw: Mapping[str, Any]) -> None:
    given = [k for k in ("model", "trace", "ops") if raw.get(k)]
    if len(given) != 1:
        errs.add("model", "give exactly one of model, trace or ops" +
                 (f" (got {', '.join(given)})" if given else ""))
    problem = zoo.model_problem(wl.model) if wl.model else None
    if problem:  # a config path or Hugging Face id that cannot be read
        errs.add("model", problem)
    elif problem is not None:
        errs.add("model", f"unknown model {wl.model!r}{suggest(wl.model, zoo.names())} "
                 f"(zoo: {', '.join(zoo.names())}; or a config.json path, a Hugging Face id "
                 f"in the local cache, or trace: FILE)")
    elif wl.model and wl.phase == "generate":
        missing = [p for p in ("prefill", "decode") if p not in zoo.phases(wl.model)]
        if missing:
            errs.add("phase", f"a generation runs the model's prefill and decode; model "
                     f"{wl.model} has no {' or '.join(missing)} phase "
                     f"(it has: {', '.join(zoo.phases(wl.model))})")
    elif wl.model and wl.phase not in zoo.phases(wl.model):
        errs.add("phase", f"model {wl.model} has no {wl.phase} phase "
                 f"(it has: {', '.join(zoo.phases(wl.model))})")
    if wl.trace:
        path = resolve_path(wl.trace, wl.source)
        if not os.path.exists(path):
            hint = ""
            if wl.trace_format == "spatten-csv":
                from .spatten_csv import where_to_get  # noqa: PLC0415
                hint = where_to_get(path)
            errs.add("trace", f"trace file not found: {os.path.normpath(path)}{hint}")
    if wl.target:
        _check_target(wl, errs)
    if wl.batch < 1:
        errs.add("batch", f"must be >= 1, got {wl.batch}")
    if wl.seq_len < 1:
        errs.add("seq_len", f"must be >= 1, got {wl.seq_len}")
    if wl.devices < 1:
        errs.add("devices", f"must be >= 1, got {wl.devices}")
    if wl.kv_len < 0:
        errs.add("kv_len", f"must be >= 0, got {wl.kv_len}")
    if wl.phase == "prefill" and wl.kv_len and not wl.ops:
        errs.add("kv_len", "a prefill starts from an empty KV cache; use phase: decode")
    _check_generation(wl, errs, raw)
    if not is_known(wl.dtype):
        errs.add("dtype", f"unknown dtype {wl.dtype!r}")
    ranges = list(wl.segments.items())
    if len(ranges) > MAX_SEGMENTS:
        errs.add("segments", f"{len(ranges):,} segments: at most {MAX_SEGMENTS}")
        ranges = []
    for name, rng in ranges:
        ok = (isinstance(rng, list) and len(rng) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in rng))
        if not ok:
            errs.add(f"segments.{name}", f"expected [start, end] token indices, got {rng!r}")
        elif not 0 <= rng[0] <= rng[1]:
            errs.add(f"segments.{name}", f"start must be <= end and >= 0, got {rng}")
        elif rng[1] > wl.seq_len:
            errs.add(f"segments.{name}", f"ends at {rng[1]}, past the sequence "
                     f"(seq_len={wl.seq_len})")
    segments = dict(wl.segments)
    if wl.model:
        segments.update({k: v for k, v in zoo.segments(wl.model).items() if k not in segments})
    num_layers = zoo.num_layers(wl.model) if wl.model and zoo.is_known(wl.model) else None
    for i, step in enumerate(wl.pruning):
        check_step(step, i, segments, num_layers, errs.add)
    for i, op in enumerate(wl.ops):
        _check_op(op, i, wl, errs)
    if len(wl.ops) > MAX_OPS:
        errs.add("ops", f"{len(wl.ops):,} entries: at most {MAX_OPS:,} in one workload (an "
                 f"op that runs many times is one entry with a repeat)")
    if len(wl.pruning) > MAX_STEPS:
        errs.add("pruning", f"{len(wl.pruning)} steps: at most {MAX_STEPS}")
    check_routing(wl.routing, errs.add)


def _check_target(wl: Workload, errs: Collector) -> None:
    """``target:`` names a target or preset, or a hardware YAML file that exists (its
    contents are checked when it is resolved, with that file named)."""
    from .. import targets  # noqa: PLC0415 - the registry, only for a workload naming one

    text = wl.target
    if text.endswith((".yaml", ".yml")) or "/" in text or os.path.sep in text:
        path = resolve_path(text, wl.source)
        if not os.path.isfile(path):
            errs.add("target", f"hardware file not found: {path}")
    elif not targets.is_known(text):
        known = targets.known_names()
        errs.add("target", f"unknown target {text!r}{suggest(text, known)} (known: "
                 f"{', '.join(known)}; or a hardware YAML path)")


def target_of(wl: Workload) -> str:
    """The target the workload names, a hardware file's path made relative to the
    working directory; '' when it names none."""
    text = wl.target
    if text.endswith((".yaml", ".yml")) or "/" in text or os.path.sep in text:
        return resolve_path(text, wl.source)
    return text


# a generation's steps are bracketed to within at most this error (a step_error above it
# would let one bracket span a whole generation whose last step costs twice its first)
MAX_STEP_ERROR = 0.5
# tokens a generation may produce (1 Mi: past every model's context today; a step's row
# is a few hundred bytes of columns)
MAX_NEW_TOKENS = 1 << 20


def _check_generation(wl: Workload, errs: Collector, raw: Mapping[str, Any]) -> None:
    """``phase: generate`` and its fields (``new_tokens``, ``exact``, ``step_error``)."""
    if wl.phase != "generate":
        for key in ("new_tokens", "exact", "step_error"):  # (to_dict writes the defaults)
            if key in raw and getattr(wl, key) != getattr(Workload, key):
                errs.add(key, f"belongs to a generation (phase: generate), not a {wl.phase}")
        return
    if wl.ops:
        errs.add("phase", "a generation runs a model (model: or a template trace:), not an "
                 "ops: list")
    if wl.trace:
        errs.add("trace", "a generation needs the model's prefill and decode templates: give "
                 "model: (a zoo name or a config), not a trace")
    if not 1 <= wl.new_tokens <= MAX_NEW_TOKENS:
        errs.add("new_tokens", f"a generation produces 1 to {MAX_NEW_TOKENS:,} tokens, got "
                 f"{wl.new_tokens}")
    if wl.kv_len:
        errs.add("kv_len", "a generation starts from an empty KV cache (its prompt is "
                 "seq_len tokens); leave kv_len out")
    if not 0.0 < wl.step_error <= MAX_STEP_ERROR:
        errs.add("step_error", f"expected a fraction in (0, {MAX_STEP_ERROR}], got "
                 f"{wl.step_error!r}")


def _vision(values: dict[str, Any], raw: Mapping[str, Any], errs: Collector) -> None:
    """Check ``image``, ``frames`` and ``text_len`` (a vision-language model's), turn
    ``text_len`` into ``seq_len`` and check a prefill's minimum ``seq_len`` (the text
    prefix and the image's visual tokens): :mod:`hwsim.trace.images`."""
    given = [k for k in ("image", "frames", "text_len") if k in raw]
    image = _image_field(values, raw, errs)
    for key, low, high in (("frames", 1, images.MAX_FRAMES), ("text_len", 1, None)):
        v = values.get(key)
        if key in raw and isinstance(v, int) and not (low <= v <= (high or v)):
            errs.add(key, f"expected an integer from {low}" + (f" to {high:,}" if high else
                                                               " up") + f", got {v}")
            values.pop(key)
    model = values.get("model") or ""
    rule = zoo.vision_inputs(model) if model and zoo.is_known(model) else None
    if rule is None:
        if given:
            what = (f"model {model} reads no image" if model else
                    "only a model: workload (a vision-language model) reads an image")
            errs.add(given[0], f"{what}; {', '.join(given)} are for vision-language models "
                     f"({', '.join(n for n in zoo.names() if zoo.vision_inputs(n)) or 'none'})")
        return
    frames = values.get("frames", 0)
    problem = rule.check(image, frames)
    if problem:
        errs.add("frames" if frames and not rule.takes_frames else "image", problem)
        return
    if values.get("phase", "prefill") not in ("prefill", "generate"):
        if "text_len" in raw:
            errs.add("text_len", "text_len sizes a prefill; a decode step is seq_len new tokens "
                     "over kv_len cached ones (the prefill's seq_len, see its report)")
        return
    layout = rule.layout(image, frames)
    pic = "its default image" if image is None else f"a {image[0]}x{image[1]} image"
    reads = (f"{model} with {pic} reads {layout.text_prefix:,} text-prefix + "
             f"{layout.visual:,} visual tokens ({layout.detail})")
    if "text_len" in values:
        if "seq_len" in raw:
            errs.add("text_len", "give seq_len (the language model's whole sequence) or "
                     "text_len (its text tokens), not both")
        elif values["text_len"] < layout.text_prefix:
            errs.add("text_len", f"{reads}: text_len counts the {layout.text_prefix} prefix "
                     f"tokens and the question, so it must be >= {layout.text_prefix}, got "
                     f"{values['text_len']}")
        else:
            values["seq_len"] = values["text_len"] + layout.visual
        return
    seq_len = values.get("seq_len", Workload.seq_len)
    if isinstance(seq_len, int) and 1 <= seq_len < layout.min_seq_len:
        errs.add("seq_len", f"{reads}, so a prefill needs seq_len >= {layout.min_seq_len:,} "
                 f"(the language model's whole sequence; the question is the rest), got "
                 f"{seq_len:,}; or give text_len (prefix + question) instead")


def _image_field(values: dict[str, Any], raw: Mapping[str, Any],
                 errs: Collector) -> tuple[int, int] | None:
    """``image: {height: H, width: W}`` as (H, W); None (and errors) otherwise."""
    if "image" not in raw or "image" not in values:
        return None
    value = values["image"]
    bad = [k for k in value if k not in ("height", "width")]
    for k in bad:
        errs.add(f"image.{k}", "unknown key (an image takes height and width, in pixels)")
    ok = not bad
    for k in ("height", "width"):
        v = value.get(k)
        if v is None:
            errs.add(f"image.{k}", "missing: the image's " + k + " in pixels")
            ok = False
        elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= images.MAX_SIDE_PX:
            errs.add(f"image.{k}", f"expected a whole number of pixels from 1 to "
                     f"{images.MAX_SIDE_PX:,}, got {v!r}")
            ok = False
    if not ok:
        values.pop("image")
        return None
    return images.image_of(value)


# op parameters for which 0 means "not used"
OPTIONAL_ZERO = ("cache_elements", "window", "v_len", "sparse_keys", "sparse_block", "lsb_bits",
                 "kv_stored")


# How many times one op of an ops: list may run: hwsim.ir.graph.MAX_REPEAT (a repeated
# op is one op, so its count costs no time or memory; the bound keeps totals exact).
# Entries of an ops: list: each is an op, lowered and a row of the report, so a kernel
# study stays within what a laptop lists at once (a 70B model is ~10,000 ops)
MAX_OPS = 100_000
MAX_STEPS = 64  # pruning steps of one workload
MAX_SEGMENTS = 64  # named token ranges of one workload


def _check_op(op: Any, i: int, wl: Workload, errs: Collector) -> None:
    where = f"ops.{i}"
    if not isinstance(op, dict):
        errs.add(where, "expected a mapping like {kind: matmul, m: 16, n: 16, k: 16}")
        return
    kind = op.get("kind")
    if not isinstance(kind, str) or kind not in OP_PARAMS:
        errs.add(f"{where}.kind", f"expected one of {', '.join(OP_PARAMS)}, got {kind!r}")
        return
    params = OP_PARAMS[kind]
    for key, value in op.items():
        if not isinstance(key, str):
            errs.add(f"{where}", f"a parameter name must be text, got {key!r}")
            continue
        if key in OP_COMMON:
            continue
        if key not in params:
            errs.add(f"{where}.{key}", f"unknown parameter of {kind}{suggest(key, params)} "
                     f"(takes: {', '.join(list(params) + list(OP_COMMON))})")
        elif key == "fn":
            ok = FN_FLOPS if kind == "elementwise" else REDUCE_FNS
            if not isinstance(value, str) or value not in ok:
                errs.add(f"{where}.fn", f"unknown function {value!r} (known: {', '.join(ok)})")
        elif key in ("causal", "gated", "trans_a", "trans_b"):
            if not isinstance(value, bool):
                errs.add(f"{where}.{key}", f"expected true or false, got {value!r}")
        elif key == "act":
            if not isinstance(value, str) or value not in MOE_ACTS:
                errs.add(f"{where}.act", f"expected one of {', '.join(MOE_ACTS)}, got {value!r}")
        elif value is None and params[key][0] is None:
            continue  # (an optional size left to its default, e.g. kv_heads)
        elif isinstance(value, bool) or not isinstance(value, int) \
                or value < (0 if key in OPTIONAL_ZERO else 1):
            errs.add(f"{where}.{key}", f"expected a positive integer, got {value!r}")
        elif value > MAX_SIZE:
            errs.add(f"{where}.{key}", f"at most {MAX_SIZE:,} (2**40), got {value:,}")
    for key in [k for k in ("name", "dtype") if k in op]:
        if not isinstance(op[key], str):
            errs.add(f"{where}.{key}", f"expected text, got {op[key]!r}")
    for key, (default, help_) in params.items():
        if default is ... and key not in op:
            errs.add(f"{where}.{key}", f"missing: {help_}")
    if "dtype" in op and not is_known(str(op["dtype"])):
        errs.add(f"{where}.dtype", f"unknown dtype {op['dtype']!r}")
    rep = op.get("repeat", 1)
    if isinstance(rep, bool) or not isinstance(rep, int) or not 1 <= rep <= MAX_REPEAT:
        errs.add(f"{where}.repeat", f"expected an integer from 1 to {MAX_REPEAT:,}, got {rep!r}")
    if kind == "topk" and isinstance(op.get("k"), int) and isinstance(op.get("n"), int) \
            and op["k"] > op["n"]:
        errs.add(f"{where}.k", f"k={op['k']} exceeds n={op['n']}")
    if kind == "moe_experts" and isinstance(op.get("experts"), int) \
            and isinstance(op.get("top_k", 2), int) and op.get("top_k", 2) > op["experts"]:
        errs.add(f"{where}.top_k", f"top_k={op.get('top_k', 2)} exceeds experts={op['experts']}")
    if kind == "attention":
        h, hk = op.get("heads"), op.get("kv_heads") or op.get("heads")
        if isinstance(h, int) and isinstance(hk, int) and hk > 0 and h % hk:
            errs.add(f"{where}.kv_heads", f"heads={h} is not a multiple of kv_heads={hk}")


def model_path(model: str, source: str) -> str:
    """``model:`` as a config path relative to the workload file's folder (then the
    working directory), made absolute; zoo names and Hugging Face ids unchanged."""
    if zoo.in_zoo(model) or os.path.isabs(model) or not source or source.startswith("<"):
        return model
    here = os.path.join(os.path.dirname(os.path.abspath(source)), os.path.expanduser(model))
    for candidate in (here, os.path.expanduser(model)):
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    return model
