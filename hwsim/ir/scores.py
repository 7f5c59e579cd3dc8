"""The attention-scores file (``hwsim.scores/1``): what a traced model's real attention
looks like, written by the tracers and read by the pruning schedules.

A scores file holds every layer's and head's attention probabilities of one model on
one prompt, ``[layer, head, query, key]``, with the model's name. ``python -m
hwsim.trace.record_scores MODEL --weights DIR --prompt TEXT -o FILE`` records one from
any model whose weights you have (:mod:`hwsim.trace.record_scores`); ``hwsim trace
minilm-l6 --scores --text FILE -o scores.npz`` records MiniLM's
(:mod:`hwsim.trace.scores`); :mod:`hwsim.pruning.schedules` turns them into keep
schedules. A file is checked at the boundary (size, shape, finite probabilities whose
rows sum to 1; :func:`read_scores`) and must be of the workload's model
(:func:`scores_mismatch`: name, layers, heads, tokens). JSON or ``.npz`` read without
pickle; needs only numpy.

The format sits here, beside the graph's (:mod:`hwsim.ir.serialize`), because both
ends use it: the tracers, upstream, write it and the pruning library reads it, so
neither has to import the other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

SCORES_SCHEMA = "hwsim.scores/1"


# Bounds on a scores file, checked before its data is used: 2^28 probabilities (1 GiB
# as float32) is GPT-2 small at 1,024 tokens (12 x 12 x 1,024², 151 M) or Llama-2-7B at
# 512 (32 x 32 x 512², 268 M); JSON is some 10 bytes a probability, so 256 MiB of it
MAX_SCORES_ELEMENTS = 1 << 28
MAX_SCORES_JSON_BYTES = 256 << 20
MAX_SCORES_NPZ_BYTES = (1 << 30) + (64 << 20)
ROW_SUM_TOLERANCE = 1e-2  # a probability row sums to 1 (fp16 rounding and zeroed masks aside)


@dataclass(frozen=True)
class Scores:
    """Attention probabilities of one text: ``attention[layer, head, query, key]``.

    ``model`` is the hwsim model name they were recorded from (``gpt2``,
    ``tinyllama-1.1b``, ``minilm-l6``: the workload's ``model:``); a workload takes
    them only for that model (:func:`scores_mismatch`)."""

    attention: np.ndarray
    tokens: tuple[str, ...]
    model: str = ""
    text: str = ""

    @property
    def layers(self) -> int:
        return int(self.attention.shape[0])

    @property
    def heads(self) -> int:
        return int(self.attention.shape[1])

    @property
    def length(self) -> int:
        return int(self.attention.shape[-1])


def write_scores(path: str | os.PathLike, scores: Scores) -> None:
    """``.npz`` (compressed) or ``.json``, in the format :func:`read_scores` checks."""
    path = os.fspath(path)
    if path.endswith(".json"):
        doc = {"schema": SCORES_SCHEMA, "model": scores.model, "text": scores.text,
               "tokens": list(scores.tokens),
               "attention": np.round(scores.attention.astype(float), 6).tolist()}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        return
    np.savez_compressed(path, attention=scores.attention.astype(np.float32),
                        tokens=np.array(scores.tokens, dtype=str),
                        model=np.array(scores.model), text=np.array(scores.text),
                        schema=np.array(SCORES_SCHEMA))


def read_scores(path: str | os.PathLike) -> Scores:
    """A scores file, checked at the boundary: every problem is one :class:`InputError`
    naming the file and the field (the format is in docs/pruning.md, "Scores files").

    ``schema`` must be ``hwsim.scores/1``; ``model`` a non-empty model name;
    ``attention`` a finite float array ``[layers, heads, tokens, tokens]`` of at most
    :data:`MAX_SCORES_ELEMENTS` probabilities in [0, 1] whose rows sum to 1; ``tokens``
    (optional) one string per token; ``text`` (optional) a string. Sizes are checked
    before the data is read (the file's bytes, the array's shape from its header)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            raise InputError("is a directory, not a scores file", source=path)
        if path.endswith(".json"):
            if size > MAX_SCORES_JSON_BYTES:
                raise InputError(f"{size:,} bytes: a JSON scores file holds at most "
                                 f"{MAX_SCORES_JSON_BYTES:,} (write .npz for larger ones)",
                                 source=path)
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if not isinstance(doc, dict):
                raise InputError("expected a JSON object {schema, model, attention, tokens}",
                                 source=path)
            schema, model, text = doc.get("schema"), doc.get("model"), doc.get("text", "")
            tokens, raw = doc.get("tokens", []), doc.get("attention")
            att = _json_array(raw, path)
        else:
            if size > MAX_SCORES_NPZ_BYTES:
                raise InputError(f"{size:,} bytes: a scores file holds at most "
                                 f"{MAX_SCORES_NPZ_BYTES:,}", source=path)
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise InputError("expected an .npz archive (or a .json file)", source=path)
                for name in ("attention", "model"):
                    if name not in z.files:
                        raise InputError(f"missing (the archive has: {', '.join(z.files)})",
                                         source=path, field=name)
                _check_npz_shape(z, path)
                att = z["attention"]
                schema = _npz_str(z, "schema", path) if "schema" in z.files else None
                model = _npz_str(z, "model", path)
                text = _npz_str(z, "text", path) if "text" in z.files else ""
                tokens = z["tokens"].tolist() if "tokens" in z.files else []
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("scores file not found", source=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text: a JSON scores file expected", source=path) from None
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as e:
        raise InputError(f"not a scores file (python -m hwsim.trace.record_scores writes "
                         f"them): {e}", source=path) from None
    return _checked(att, schema, model, text, tokens, path)


def _json_array(raw, path: str) -> np.ndarray:
    if not isinstance(raw, list):
        raise InputError(f"expected nested lists [layers][heads][tokens][tokens] of "
                         f"probabilities, got {type(raw).__name__}", source=path,
                         field="attention")
    try:
        att = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise InputError("expected nested lists [layers][heads][tokens][tokens] of numbers, "
                         "equally long", source=path, field="attention") from None
    return att


def _npz_str(z, name: str, path: str) -> str:
    a = z[name]
    if a.ndim != 0 or a.dtype.kind != "U":
        raise InputError(f"expected a string, got an array of {a.dtype} {list(a.shape)}",
                         source=path, field=name)
    return str(a)


def _check_npz_shape(z, path: str) -> None:
    """The attention array's shape and type from its header, before it is decompressed."""
    with z.zip.open("attention.npy") as f:
        fmt = np.lib.format
        major, _ = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
    if dtype.kind != "f":
        raise InputError(f"expected floating-point probabilities, got {dtype}", source=path,
                         field="attention")
    _check_shape(shape, path)


def _check_shape(shape, path: str) -> None:
    if len(shape) != 4 or shape[2] != shape[3] or 0 in shape:
        raise InputError(f"expected [layers, heads, tokens, tokens], got shape {list(shape)}",
                         source=path, field="attention")
    count = int(np.prod(shape, dtype=np.int64))
    if count > MAX_SCORES_ELEMENTS:
        raise InputError(f"{count:,} probabilities {list(shape)}: at most "
                         f"{MAX_SCORES_ELEMENTS:,} (record fewer tokens)", source=path,
                         field="attention")


def _checked(att: np.ndarray, schema, model, text, tokens, path: str) -> Scores:
    if schema is not None and schema != SCORES_SCHEMA:
        raise InputError(f"expected {SCORES_SCHEMA!r}, got {schema!r}", source=path,
                         field="schema")
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"expected the name of the model the scores come from (e.g. gpt2), "
                         f"got {model!r}", source=path, field="model")
    if not isinstance(text, str):
        raise InputError(f"expected a string, got {type(text).__name__}", source=path,
                         field="text")
    _check_shape(att.shape, path)
    if att.dtype.kind != "f":
        raise InputError(f"expected floating-point probabilities, got {att.dtype}",
                         source=path, field="attention")
    att = att.astype(np.float32, copy=False)
    if not np.isfinite(att).all():
        bad = np.argwhere(~np.isfinite(att))[0].tolist()
        raise InputError(f"holds a value that is not finite (NaN or infinity) at {bad}",
                         source=path, field="attention")
    lo, hi = float(att.min()), float(att.max())
    if lo < 0 or hi > 1 + ROW_SUM_TOLERANCE:
        raise InputError(f"probabilities lie in [0, 1], these span [{lo:g}, {hi:g}]",
                         source=path, field="attention")
    sums = att.sum(axis=-1, dtype=np.float64)
    off = np.abs(sums - 1) > ROW_SUM_TOLERANCE
    if off.any():
        where = np.argwhere(off)[0].tolist()
        raise InputError(f"each row [layer, head, query] is a softmax and sums to 1; row "
                         f"{where} sums to {sums[tuple(where)]:g}", source=path,
                         field="attention")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or \
            (tokens and len(tokens) != att.shape[-1]):
        raise InputError(f"expected one string per token ({att.shape[-1]}) or none",
                         source=path, field="tokens")
    return Scores(att, tuple(tokens), model.strip(), text)


def scores_mismatch(scores: Scores, model: str, layers: int, heads: int,
                    tokens: int) -> str | None:
    """Why ``scores`` are not of this workload's model (None when they are): its name,
    the pruned stack's layers and heads, and the prompt's length."""
    got = (scores.model, scores.layers, scores.heads, scores.length)
    want = (model or scores.model, layers, heads, tokens)
    for name, g, w in zip(("model", "layers", "heads", "tokens"), got, want):
        if g != w:
            return (f"the scores are of {scores.model} ({scores.layers} layers x "
                    f"{scores.heads} heads, {scores.length} tokens) but the workload runs "
                    f"{model or 'its model'} ({layers} layers x {heads} heads, {tokens} "
                    f"tokens): {name} {g!r}, expected {w!r} (record them with python -m "
                    f"hwsim.trace.record_scores {model or 'MODEL'})")
    return None
