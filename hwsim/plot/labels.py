"""What a plotted point is: readable configuration labels and groups of equal work.

A sweep's row is one configuration: the values of its axes. Written out in
full, a pruning axis is JSON (``[{"keep": 0.5, "method": "hawk", "segment":
"visual"}]``) and a label of every axis is a line of fifty characters. A
figure needs the *shortest description that tells its points apart*:
:func:`describe` writes one label per row from the features that vary among
the rows plotted, adding them in order of importance (the target, a pruning
method, then its settings, then the other axes) only while they still tell
more rows apart. The LLaVA sweep's bars then read ``ascend, hawk``,
``volta, dense``; a keep-ratio axis adds ``keep=0.25`` only where two points
would otherwise share a label. What every plotted row shares is said once,
in the title (:func:`common`).

Points compared on a Pareto front, or as "the fastest configuration", must
do the *same work*: a sweep whose axis is the sequence length has a
128-token point that beats every 512-token point on latency and on energy,
and a front over both is that one point. :func:`work_groups` keys each row by
its workload and its dense FLOPs (the work before pruning, which no target,
tiling or pruning method changes) and names each group by the axes that
differ between groups (``seq_len=128, batch=2``).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import pandas as pd

from .style import format_value, is_number, plain_number

# result columns: never part of a configuration's description
RESULT = {"index", "point_id", "status", "error", "preset", "fidelity", "workload",
          "latency_s", "cycles", "flops", "dense_flops", "executed_flops", "dram_read_bytes",
          "dram_write_bytes", "dram_bytes", "energy_j", "energy_compute_j", "energy_onchip_j",
          "energy_dram_j", "energy_static_j", "energy_interconnect_j", "by_kind", "by_bound",
          "hwsim_version", "ttft_s", "tpot_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s",
          "tokens_per_s", "energy_per_token_j", "dram_bytes_per_token", "kv_cache_bytes",
          "peak_memory_bytes", "flops_per_s", "bytes_per_s"}
_PRUNING_ORDER = ("method", "keep", "tokens", "at_layer")  # then the other keys, sorted


def candidate_columns(df: pd.DataFrame) -> list[str]:
    """The columns that describe a configuration: the sweep's axes when the frame
    still has them, else every column that is not a result and holds few values."""
    axes = [a for a in df.attrs.get("axes", []) if a in df.columns]
    if axes:
        return axes
    out = []
    for c in df.columns:
        if c in RESULT or str(c).endswith(("_s", "_j")):
            continue
        try:
            n = df[c].astype(str).nunique()
        except TypeError:  # pragma: no cover - unhashable cells
            continue
        if n <= 24:
            out.append(c)
    return out


def short_name(column: str) -> str:
    """``target.dram_bw_bytes_per_s`` -> ``dram_bw``; ``pruning.0.keep`` -> ``keep``."""
    name = str(column).split(".")[-1]
    for suffix in ("_bytes_per_s", "_flops_per_s", "_bytes", "_hz", "_s", "_j", "_w"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _steps(v: Any) -> list[dict] | None:
    """A pruning cell as its list of steps (None when it is not one)."""
    if isinstance(v, str):
        text = v.strip()
        if not text.startswith("["):
            return None
        try:
            v = json.loads(text)
        except ValueError:
            return None
    if isinstance(v, (list, tuple)) and all(isinstance(s, dict) for s in v):
        return [dict(s) for s in v]
    return None


def _number_text(column: str, v: Any) -> str:
    text = format_value(column, v)
    return text.replace(" ", "") if len(text) <= 4 else text


def _features(df: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, list[str], int]]:
    """Each (name, text per row, pruning position or -1) that can tell rows apart, in
    order of importance: the target first, a pruning method before its settings."""
    feats: list[tuple[str, list[str], int]] = []
    order = sorted(columns, key=lambda c: (c != "target", list(columns).index(c)))
    for c in order:
        values = df[c].tolist()
        steps = [_steps(v) for v in values]
        if values and all(s is not None for s in steps):
            depth = max((len(s) for s in steps), default=0)
            for i in range(max(depth, 1)):
                at = [s[i] if i < len(s) else None for s in steps]
                feats.append((f"{c}[{i}].method", [
                    ("dense" if i == 0 and not s else "") if a is None else str(a.get("method"))
                    for a, s in zip(at, steps)], i))
                keys = sorted({k for a in at if a for k in a if k != "method"},
                              key=lambda k: (_PRUNING_ORDER.index(k) if k in _PRUNING_ORDER
                                             else len(_PRUNING_ORDER), k))
                for k in keys:
                    feats.append((f"{c}[{i}].{k}", [
                        "" if a is None or k not in a else f"{k}={_value(k, a[k])}"
                        for a in at], i))
            continue
        texts = []
        for v in values:
            if not is_number(v):
                texts.append(str(v))
            else:
                texts.append(f"{short_name(c)}={_number_text(c, v)}")
        feats.append((c, texts, -1))
    return feats


def _value(key: str, v: Any) -> str:
    if is_number(v):
        return plain_number(v)
    return str(v)


def _distinct(rows: list[tuple]) -> int:
    """How many different rows (tuples of feature texts) there are."""
    return len(set(rows))


def describe(df: pd.DataFrame, columns: str | Sequence[str] | None = None, *,
             full: bool = False) -> list[str]:
    """One short label per row that tells the rows apart (see the module's docstring).

    Features that vary among the rows are added in order of importance while
    each still separates more rows; rows whose every feature is equal share a
    label, and rows that all share every feature get empty labels. With
    ``full=True`` every feature that varies is written, whether or not another
    one already tells the rows apart: a bar already named by its target then
    still says which pruning it ran."""
    if columns is None:
        columns = candidate_columns(df)
    columns = [columns] if isinstance(columns, str) else [c for c in columns if c in df.columns]
    n = len(df)
    if n == 0:
        return []
    all_feats = _features(df, columns)
    varying = [k for k, f in enumerate(all_feats) if len(set(f[1])) > 1]

    def distinct(ks: list[int]) -> int:
        return _distinct(list(zip(*(all_feats[k][1] for k in ks)))) if ks else 1

    target = distinct(varying)  # what every varying feature together tells apart
    chosen: list[int] = []
    for k in varying:
        if full:
            chosen.append(k)
            continue
        current = distinct(chosen)
        if current >= target:
            break
        if distinct(chosen + [k]) > current:
            chosen.append(k)
    if not chosen:
        return [""] * n
    # a pruning setting speaks with its method ("hawk keep=0.5", not "keep=0.5"), even
    # when every row has that method
    for k in list(chosen):
        name, _, pos = all_feats[k]
        if pos >= 0 and not name.endswith(".method"):
            method = name.rsplit(".", 1)[0] + ".method"
            chosen += [j for j, f in enumerate(all_feats) if f[0] == method and j not in chosen]
    labels = []
    for row in range(n):
        parts: list[str] = []
        for k in sorted(chosen):
            name, texts, pos = all_feats[k]
            text = texts[row]
            if not text:
                continue
            if pos >= 0 and not name.endswith(".method") and parts:
                parts[-1] += " " + text  # a setting joins its method
            else:
                parts.append(text)
        labels.append(", ".join(parts))
    return labels


def common(df: pd.DataFrame, columns: str | Sequence[str] | None = None,
           limit: int = 4) -> str:
    """What every row shares, for a title: ``seq_len=512, batch=1`` (at most ``limit``
    columns, pruning steps written as in :func:`describe`)."""
    if columns is None:
        columns = candidate_columns(df)
    columns = [columns] if isinstance(columns, str) else [c for c in columns if c in df.columns]
    parts = []
    for c in columns:
        texts = {str(v) for v in df[c].tolist()}
        if len(df) == 0 or len(texts) != 1:
            continue
        v = df[c].iloc[0]
        steps = _steps(v)
        if steps is not None:
            parts.append(" + ".join(
                " ".join([str(s.get("method"))] + [f"{k}={_value(k, s[k])}" for k in sorted(
                    s, key=lambda k: (_PRUNING_ORDER.index(k) if k in _PRUNING_ORDER
                                      else len(_PRUNING_ORDER), k)) if k != "method"])
                for s in steps) or "dense")
        elif not is_number(v):
            parts.append(str(v))
        else:
            parts.append(f"{short_name(c)}={_number_text(c, v)}")
    if len(parts) > limit:
        parts = parts[:limit] + ["..."]
    return ", ".join(parts)


def work_groups(df: pd.DataFrame) -> tuple[pd.Series, dict[Any, str]]:
    """Each row's group of equal work, and a name per group.

    Rows do the same work when their workload and dense FLOPs are equal (a
    frame without either column is one group). A group is named by the
    configuration columns that are constant within each group and differ
    between groups (``seq_len=128, batch=2``), else by its workload and dense
    FLOPs."""
    parts = [c for c in ("workload", "dense_flops") if c in df.columns]
    if not parts or len(df) == 0:
        key = pd.Series([0] * len(df), index=df.index)
        return key, {0: ""}
    key = pd.Series(list(zip(*(df[c].astype(str).tolist() for c in parts))), index=df.index)
    groups = list(dict.fromkeys(key.tolist()))
    if len(groups) == 1:
        return key, {groups[0]: ""}
    naming = [c for c in candidate_columns(df) if c not in parts
              and df[c].astype(str).groupby(key).agg("nunique").max() == 1
              and df[c].astype(str).nunique() > 1]
    firsts = df.loc[~key.duplicated()]
    if naming:
        texts = describe(firsts, naming)
    else:
        texts = [", ".join(t for t in (
            str(r["workload"]) if "workload" in parts and df["workload"].nunique() > 1 else "",
            f"{format_value('dense_flops', float(r['dense_flops']))}"
            if "dense_flops" in parts else "") if t) for _, r in firsts.iterrows()]
    return key, dict(zip(key[firsts.index].tolist(), texts))
