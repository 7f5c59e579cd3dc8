"""Results on disk: a Parquet dataset that grows as points finish.

A sweep's output ``FILE.parquet`` is a *directory* of Parquet part files (the
layout pandas, pyarrow, DuckDB, Polars and Spark read as one table)::

    results/spatten-topk.parquet/
        part-000001-3f2a9c1e.parquet     # the first points that finished
        part-000002-b71d0e44.parquet     # the next ones
        ...

Rows are buffered as points finish and written as a new part file every
``flush_every`` points or ``flush_s`` seconds, whichever comes first, and when
the sweep ends or is interrupted. Each part is written to a hidden temporary
name (``.tmp-...``, which readers ignore), flushed to disk with ``fsync``, and
then renamed into place, and the directory is synced too. A rename is atomic, so
a part file is either complete or absent: killing a sweep (even with
``kill -9``, or a power cut) loses at most the points finished since the last
part was written, and never damages the points written before it. The next run
deletes leftover temporary files, reads the ids already present, and runs only
the rest.

Every row carries its point's ``point_id``; readers keep the last row of each
id, so a row rewritten later (``--retry-failed``, or compaction) supersedes the
earlier one without ever counting twice. When a finished sweep has left more
than :data:`COMPACT_ABOVE` parts, they are merged into one (written first, the
old parts deleted after, so a crash in between only leaves duplicates that
readers drop).

Read results with :func:`read_results` (or ``pandas.read_parquet(path)``). One
writer at a time per directory.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    import pandas as pd

from ..errors import InputError
from .spec import SweepSpec

COMPACT_ABOVE = 32
_INT_RESULTS = ("cycles", "flops", "dense_flops", "executed_flops", "dram_read_bytes",
                "dram_write_bytes", "dram_bytes")
_FLOAT_RESULTS = ("latency_s", "energy_j", "energy_compute_j", "energy_onchip_j",
                  "energy_dram_j", "energy_static_j", "energy_interconnect_j")
_STR_RESULTS = ("status", "error", "target", "preset", "fidelity", "workload", "by_kind",
                "by_bound", "hwsim_version")
META_KEY = b"hwsim.sweep"


def require_pyarrow() -> None:
    """Sweeps store Parquet through pyarrow, an extra: without it, say which one."""
    try:
        import pyarrow  # noqa: F401, PLC0415
    except ImportError:
        raise InputError("sweeps write and read Parquet, which needs pyarrow "
                         "(pip install 'hwsim[dist]')", source="hwsim sweep") from None


def schema(spec: SweepSpec):
    """The Arrow schema of a sweep's rows: index, id, axes, status, results."""
    import pyarrow as pa  # noqa: PLC0415

    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string(),
             "json": pa.string()}
    fields = [pa.field("index", pa.int64()), pa.field("point_id", pa.string())]
    names = {"index", "point_id"}
    for axis in spec.axes:
        fields.append(pa.field(axis.name, types[axis.dtype]))
        names.add(axis.name)
    for group, typ in ((_STR_RESULTS[:6], pa.string()), (_FLOAT_RESULTS[:1], pa.float64()),
                       (_INT_RESULTS, pa.int64()), (_FLOAT_RESULTS[1:], pa.float64()),
                       (_STR_RESULTS[6:], pa.string())):
        for name in group:
            if name not in names:
                fields.append(pa.field(name, typ))
                names.add(name)
    if _generates(spec):  # a generation's request figures (hwsim.sweep.point)
        from .point import GENERATION_COLUMNS  # noqa: PLC0415

        fields.extend(pa.field(name, pa.float64()) for name in GENERATION_COLUMNS
                      if name not in names)
    quality = quality_columns(spec)
    if quality:  # published quality (hwsim.accuracy) of the model's pruning settings
        fields.extend(pa.field(name, pa.float64()) for name in quality)
        fields.extend(pa.field(name, pa.string()) for name in ("quality_source",
                                                                "quality_note"))
    meta = {"axes": {a.name: a.dtype for a in spec.axes}, "sweep": spec.to_dict()}
    return pa.schema(fields, metadata={META_KEY: json.dumps(meta, default=str).encode()})


def sweep_model(spec: SweepSpec) -> str | None:
    """The model every point of the sweep runs (None when an axis varies it or the
    workload cannot be read: the points then report the problem)."""
    if "model" in spec.axis_names:
        return None
    if "model" in spec.sets:
        return str(spec.sets["model"])
    data = spec.workload
    if not isinstance(data, Mapping):
        from ..workload import load_workload  # noqa: PLC0415

        try:
            return load_workload(data).model or None
        except InputError:
            return None
    return data.get("model")


def quality_columns(spec: SweepSpec) -> list[str]:
    """``quality_<benchmark>`` for every benchmark the shipped quality data has for the
    sweep's model (docs/pruning.md, "Published quality"); none for another model."""
    from ..accuracy import columns  # noqa: PLC0415

    return columns(sweep_model(spec))


def _generates(spec: SweepSpec) -> bool:
    """Whether the sweep's points are generations (phase: generate): its workload's
    phase, as the sweep's sets or a phase axis may change it."""
    if "phase" in spec.axis_names:
        return True
    if "phase" in spec.sets:
        return spec.sets["phase"] == "generate"
    data = spec.workload
    if not isinstance(data, Mapping):
        from ..workload import load_workload  # noqa: PLC0415

        try:
            return load_workload(data).phase == "generate"
        except InputError:
            return False  # the points report the workload's problem
    return data.get("phase") == "generate"


def encode(value: Any, dtype: str) -> Any:
    """An axis value as its column stores it."""
    if dtype == "json":
        return json.dumps(value, sort_keys=True, default=str)
    if dtype == "float":
        return float(value)
    return value


class MemoryStore:
    """Rows kept in memory only: a sweep run without an output file."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def done(self) -> dict[str, str]:
        return {}

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def frame(self) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415 (loaded on first need)

        return pd.DataFrame(self.rows)


class ResultStore(MemoryStore):
    """The part-file dataset described in the module docstring."""

    def __init__(self, path: str | os.PathLike, spec: SweepSpec, *, fresh: bool = False,
                 flush_every: int = 64, flush_s: float = 2.0):
        super().__init__()
        self.path = os.fspath(path)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise InputError("exists and is not a sweep results directory (a sweep writes "
                             "FILE.parquet as a directory of part files)", source=self.path)
        os.makedirs(self.path, exist_ok=True)
        self._lock = _lock(self.path)  # one sweep writes a directory at a time
        for name in os.listdir(self.path):
            if name.startswith(".tmp-") or (fresh and _is_part(name)):
                os.remove(os.path.join(self.path, name))
        self.schema = schema(spec)
        self.flush_every = max(1, int(flush_every))
        self.flush_s = flush_s
        self._buffer: list[dict[str, Any]] = []
        self._last = time.monotonic()
        self.written = 0

    def parts(self) -> list[str]:
        return sorted(os.path.join(self.path, n) for n in os.listdir(self.path) if _is_part(n))

    def done(self) -> dict[str, str]:
        """point_id -> status of every point already on disk."""
        import pyarrow.parquet as pq  # noqa: PLC0415

        out: dict[str, str] = {}
        for part in self.parts():
            t = pq.read_table(part, columns=["point_id", "status"])
            out.update(zip(t.column("point_id").to_pylist(), t.column("status").to_pylist()))
        return out

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        self.rows.append(row)
        if (len(self._buffer) >= self.flush_every
                or time.monotonic() - self._last >= self.flush_s):
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one new part file, atomically."""
        self._last = time.monotonic()
        if not self._buffer:
            return
        import pyarrow as pa  # noqa: PLC0415

        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        self._write(table)
        self.written += len(self._buffer)
        self._buffer = []

    def _write(self, table) -> str:
        import pyarrow.parquet as pq  # noqa: PLC0415

        parts = self.parts()
        seq = int(os.path.basename(parts[-1]).split("-")[1]) + 1 if parts else 1
        name = f"part-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = os.path.join(self.path, f".tmp-{name}")
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        final = os.path.join(self.path, name)
        os.replace(tmp, final)
        _fsync_dir(self.path)
        return final

    def release(self) -> None:
        """Let another sweep write the directory (after :meth:`close` or an interruption)."""
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.close()  # closing the file drops its lock

    def __del__(self):
        self.release()

    def close(self) -> None:
        """Flush, then merge the parts into one when there are many."""
        self.flush()
        parts = self.parts()
        if len(parts) > COMPACT_ABOVE:
            import pyarrow as pa  # noqa: PLC0415

            df = read_results(self.path)
            try:
                table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
            except (pa.ArrowException, KeyError, ValueError, TypeError):
                # rows of another sweep definition share the directory: keep their columns
                table = pa.Table.from_pandas(df, preserve_index=False)
                table = table.replace_schema_metadata({META_KEY: self.schema.metadata[META_KEY]})
            self._write(table)
            for part in parts:
                os.remove(part)
            _fsync_dir(self.path)


LOCK_NAME = ".lock"


def _lock(path: str):
    """An exclusive lock on the results directory ``path`` (``fcntl.flock`` on its
    ``.lock`` file, released when the process ends however it ends), or one-line
    error when another sweep holds it. Where ``fcntl`` is missing (Windows) no lock."""
    try:
        import fcntl  # noqa: PLC0415
    except ImportError:  # pragma: no cover - not POSIX
        return None
    f = open(os.path.join(path, LOCK_NAME), "a+")  # noqa: SIM115 - held while writing
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        who = f" (pid {holder})" if holder else ""
        raise InputError(f"another sweep is writing these results{who}; wait for it, or "
                         "write elsewhere", source=path) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _is_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """A sweep's results as a DataFrame: one row per point, the last row of each id.

    ``df.attrs["axes"]`` lists the axis columns and ``df.attrs["sweep"]`` the
    sweep that wrote them (from the Parquet metadata). A plain Parquet file is
    read as it is.
    """
    require_pyarrow()
    import pyarrow.parquet as pq  # noqa: PLC0415

    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("results not found", source=path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if _is_part(n))
    else:
        files = [path]
    frames, meta = [], {}
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # noqa: BLE001 - name the file, whatever pyarrow says
            raise InputError(f"not a readable Parquet file: {e}", source=f) from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw:
            meta = json.loads(raw)
        frames.append(table.to_pandas())
    df = _concat(frames)
    if "point_id" in df.columns:
        df = df.drop_duplicates("point_id", keep="last")
    if "index" in df.columns:
        df = df.sort_values("index", kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["axes"] = list(meta.get("axes", {}))
    df.attrs["sweep"] = meta.get("sweep", {})
    return df


def _concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415 (loaded on first need)

    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
