"""Running a sweep: choose where points run, stream results, resume, report progress.

:func:`sweep` is the API (``hwsim.sweep``) and what ``hwsim sweep`` calls::

    import hwsim
    df = hwsim.sweep("sweeps/bert-seq-bw.yaml", "results/bert.parquet", workers=2)
    df[["seq_len", "target.dram_bw_bytes_per_s", "latency_s", "energy_j"]]

Where the points run:

- ``workers=1``: in this process, one after another (simplest to debug);
- ``workers=N`` (default: the number of cores): a local pool of ``N``
  processes (:class:`concurrent.futures.ProcessPoolExecutor`); at most a few
  points per worker are in flight, so memory stays flat on huge sweeps;
- ``client=`` a :class:`distributed.Client` (from a notebook), or
  ``scheduler="tcp://host:8786"``: a Dask distributed cluster. Its workers
  need hwsim installed, and the workload's trace file (if any) and any hardware
  YAML at the same paths.

Each point is independent and deterministic, so the three give identical rows.

A worker process that dies outright (killed, out of memory) takes its points
with it; the pool is restarted and those points are rerun one at a time, so the
point that kills a worker is found, recorded as failed, and the sweep goes on.
Ctrl-C writes what has finished and stops; run the same command again to
resume.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

if TYPE_CHECKING:
    import pandas as pd

from ..errors import InputError
from .point import Base, Point, point_name, prepare, run_point
from .progress import Progress
from .spec import SweepSpec, load_sweep
from .store import MemoryStore, ResultStore, encode, read_results, require_pyarrow, schema

IN_FLIGHT_PER_WORKER = 4
CONNECT_TIMEOUT_S = 10


def sweep(spec: str | os.PathLike | Mapping[str, Any] | SweepSpec,
          output: str | os.PathLike | None = None, *, workers: int | None = None,
          client: Any = None, scheduler: str | None = None, progress: bool = True,
          retry_failed: bool = False, fresh: bool = False,
          sets: Mapping[str, Any] | None = None, flush_every: int = 64,
          flush_s: float = 2.0) -> pd.DataFrame:
    """Run every point of a sweep and return one row per point.

    ``spec`` is a sweep YAML path, a mapping of the same fields, or a
    :class:`~hwsim.sweep.spec.SweepSpec`. With ``output`` (a ``.parquet``
    directory, see :mod:`hwsim.sweep.store`) rows stream to disk as points
    finish and points already there are skipped (``retry_failed`` reruns the
    failed ones, ``fresh`` discards everything first). ``sets`` adds fixed
    overrides, like the file's ``set:``.

    The DataFrame has the columns ``index``, ``point_id``, one per axis,
    ``status`` (``ok`` or ``error``), ``error``, ``target``, ``preset``,
    ``fidelity``, ``workload``, the totals (``latency_s``, ``cycles``,
    ``flops``, ``dense_flops``, ``dram_read_bytes``, ``dram_write_bytes``,
    ``dram_bytes``, ``energy_j`` and ``energy_<component>_j``), ``by_kind``
    and ``by_bound`` (JSON text: sums per op kind, latency per bound) and
    ``hwsim_version``. ``df.attrs["axes"]`` lists the axis columns and
    ``df.attrs["run"]`` what this call did (points run, failed, skipped,
    seconds, points per second).
    """
    require_pyarrow()
    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    if sets:
        clash = [k for k in sets if k in spec.axis_names]
        if clash:
            raise InputError(f"{', '.join(clash)} is an axis of the sweep", source="--set")
        spec = dataclasses.replace(spec, sets={**spec.sets, **dict(sets)})
    if workers is not None and workers < 1:
        raise InputError(f"expected a number of workers >= 1, got {workers}",
                         source="--workers")
    base, points = prepare(spec)
    store = (ResultStore(output, spec, fresh=fresh, flush_every=flush_every, flush_s=flush_s)
             if output is not None else MemoryStore())
    done = store.done()
    todo = [p for p in points
            if p.id not in done or (retry_failed and done[p.id] != "ok")]
    bar = Progress(len(points), name=spec.name, skipped=len(points) - len(todo),
                   enabled=progress)
    from .. import __version__  # noqa: PLC0415

    axes = [(a.name, a.dtype) for a in spec.axes]
    finished = False
    from ..progress import enabled as progress_enabled  # noqa: PLC0415

    try:  # the sweep's bar is the only one: no simulation's bar inside it
        with progress_enabled(False):
            for point, result in _execute(base, todo, workers=workers, client=client,
                                          scheduler=scheduler):
                row = {"index": point.index, "point_id": point.id,
                       **{name: encode(point.values[name], dtype) for name, dtype in axes},
                       **result, "hwsim_version": __version__}
                store.add(row)
                bar.update(failed=row["status"] != "ok")
        finished = True
    finally:
        try:
            if finished:
                store.close()
            else:
                store.flush()
        finally:
            if hasattr(store, "release"):
                store.release()
            bar.close()
    df = _frame(spec, store, points, output)
    df.attrs["run"] = {"points": len(points), "ran": bar.done, "failed_now": bar.failed,
                       "skipped": bar.skipped, "elapsed_s": time.monotonic() - bar.start,
                       "points_per_s": bar.rate}
    return df


def _frame(spec: SweepSpec, store, points: list[Point], output) -> pd.DataFrame:
    """The rows of this sweep's points, in point order, from disk or memory."""
    if output is not None:
        df = read_results(output)
        order = {p.id: p.index for p in points}
        df = df[df["point_id"].isin(order)].copy()
        df["index"] = df["point_id"].map(order).astype("int64")
        df = df.sort_values("index").reset_index(drop=True)
    else:
        import pyarrow as pa  # noqa: PLC0415

        table = pa.Table.from_pylist(store.rows, schema=schema(spec))
        df = table.to_pandas().sort_values("index").reset_index(drop=True)
    df.attrs["axes"] = spec.axis_names
    df.attrs["sweep"] = spec.to_dict()
    return df


def _execute(base: Base, todo: list[Point], *, workers: int | None, client: Any,
             scheduler: str | None) -> Iterator[tuple[Point, dict]]:
    if client is not None or scheduler:
        return _dask(base, todo, client, scheduler)
    n = workers or os.cpu_count() or 1
    if n == 1 or len(todo) <= 1:
        return ((p, run_point(base, p)) for p in todo)
    return _pool(base, todo, min(n, len(todo)))


def _worker_init(parent: int) -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it stops the pool), and a
    worker dies with its parent, however the parent ends (``kill -9`` included): the
    kernel signals it (Linux ``prctl(PR_SET_PDEATHSIG)``), and a watcher thread
    checks the parent every second where that is missing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before the watch was set
        os._exit(1)
    import threading  # noqa: PLC0415

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="hwsim-parent-watch", daemon=True).start()


def _pool(base: Base, todo: list[Point], n: int) -> Iterator[tuple[Point, dict]]:
    queue = list(reversed(todo))
    suspects: list[Point] = []  # in flight when a worker died: rerun one at a time
    while queue or suspects:
        pool = ProcessPoolExecutor(max_workers=n, initializer=_worker_init,
                                   initargs=(os.getpid(),))
        pending: dict = {}
        clean = False
        try:
            while queue or suspects or pending:
                while suspects and not pending:
                    p = suspects.pop()
                    pending[pool.submit(run_point, base, p)] = p
                while not suspects and queue and len(pending) < n * IN_FLIGHT_PER_WORKER:
                    p = queue.pop()
                    pending[pool.submit(run_point, base, p)] = p
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result = fut.result()  # a dead worker raises here; fut stays pending
                    yield pending.pop(fut), result
            clean = True
        except BrokenProcessPool:
            lost = list(pending.values())
            if len(lost) == 1:  # alone in flight: this point killed its worker
                yield lost[0], _error(base, lost[0], "the worker process running this point "
                                      "died (killed, or out of memory)")
            else:
                suspects.extend(reversed(lost))
        finally:
            pool.shutdown(wait=clean, cancel_futures=True)


def _error(base: Base, point: Point, message: str) -> dict:
    return {"status": "error", "error": message,
            "target": point.values.get("target", base.target), "preset": None,
            "fidelity": point.values.get("fidelity", base.fidelity),
            "workload": point_name(base)}


def _dask(base: Base, todo: list[Point], client: Any,
          scheduler: str | None) -> Iterator[tuple[Point, dict]]:
    try:
        from distributed import Client, as_completed  # noqa: PLC0415
    except ImportError:
        raise InputError("running on a Dask cluster needs dask.distributed "
                         "(pip install 'hwsim[dist]')", source="--scheduler") from None
    own = client is None
    if own:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, ValueError, TimeoutError) as e:
            raise InputError(f"cannot reach the Dask scheduler: {e}",
                             source="--scheduler") from None
    pending: dict = {}
    try:
        threads = sum(client.nthreads().values()) or 1
        window = max(8, threads * IN_FLIGHT_PER_WORKER)
        queue: Iterable[Point] = iter(todo)
        ac = as_completed()
        for p in queue:
            fut = client.submit(run_point, base, p, pure=False)
            pending[fut] = p
            ac.add(fut)
            if len(pending) >= window:
                break
        for fut in ac:
            p = pending.pop(fut)
            try:
                result = fut.result()
            except Exception as e:  # noqa: BLE001 - a lost task is a failed point
                result = _error(base, p, f"{type(e).__name__}: {' '.join(str(e).split())}")
            yield p, result
            nxt = next(queue, None)
            if nxt is not None:
                f2 = client.submit(run_point, base, nxt, pure=False)
                pending[f2] = nxt
                ac.add(f2)
    finally:
        if pending:
            client.cancel(list(pending))
        if own:
            client.close()
