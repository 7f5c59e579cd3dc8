"""The analytical attention walk in C (hwsim/accelerators/ascend/_cwalk.c) gives the
Python walk's numbers to the last bit (cv_pipeline._step_fields then _walk_numbers, the
reference), and leaves to Python what it does not take.

The compiled walk is optional (built by an install or ``python setup.py build_ext
--inplace``; docs/architecture.md): without it these tests skip, saying so, and hwsim
runs the Python walk.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import fields, replace

import pytest
from conftest import ROOT

import hwsim
from hwsim.accelerators.ascend import cv_pipeline as cv
from hwsim.accelerators.ascend.chip import Chip
from hwsim.targets import resolve

pytestmark = pytest.mark.skipif(
    cv._cwalk is None,
    reason="the compiled attention walk is not built (python setup.py build_ext --inplace)")


@contextmanager
def compiled(on: bool):
    was = cv.COMPILED
    cv.COMPILED = on
    try:
        yield
    finally:
        cv.COMPILED = was


def _value(rng: random.Random, scale: float) -> float:
    """A block field: often 0.0, now and then -0.0, negative or a small int."""
    x = rng.random()
    if x < 0.15:
        return 0.0
    if x < 0.18:
        return -0.0
    if x < 0.22:
        return -rng.random() * scale
    if x < 0.26:
        return rng.randint(0, 5)  # (an int field: Python's float arithmetic on it)
    return rng.random() * scale


def _block(rng: random.Random, store: bool) -> cv.Block:
    """A random block: times, loads that miss (with mask rows), hit L2 or the slow L2,
    pads, a V share of the load (more than the data at times: the share is clamped),
    the tile end's store or none."""
    times = [_value(rng, rng.choice([1e-7, 1e-6])) for _ in range(7)]
    lh = _value(rng, rng.choice([1e5, 1e3]))
    loads = [lh, _value(rng, 1e5), _value(rng, 1e4),
             rng.choice([0.0, 0.0, abs(lh) * rng.random()]), _value(rng, 256.0),
             _value(rng, 256.0)]
    st = rng.choice([rng.random() * 1e5, 65536.0, 32768.0]) if store else 0.0
    v = rng.choice([0.0, rng.random() * 1e5, rng.random() * 1e7])
    return cv.Block(*times, *loads, st, {}, v)


def random_tiles(rng: random.Random) -> list:
    """A walk's tiles as an op hands them over: (runs of equal blocks, their tile_sum,
    the block count), the last run's block storing at the tile's end; a tile now and
    then the same tuple as an earlier one (an op's tiles are shared)."""
    tiles: list = []
    for _ in range(rng.choice([1, 2, 5, 30, 80])):
        if tiles and rng.random() < 0.2:
            tiles.append(rng.choice(tiles))
            continue
        runs = []
        n_runs = rng.randint(1, 4)
        for r in range(n_runs):
            runs.append((_block(rng, r == n_runs - 1 and rng.random() < 0.8),
                         rng.choice([1, 1, 2, 3, 7, 40])))
        tiles.append((runs, cv.tile_sum(runs), sum(k for _, k in runs)))
    return tiles


def _ranges(rng: random.Random, n: int, trial: int) -> list[tuple[int, int]]:
    """The walk's own steps (cv_pipeline._steps) or random cuts (a step of one block,
    of all of them)."""
    if trial % 3:
        return cv._steps(n)
    cuts = sorted({0, n, *(rng.randint(0, n) for _ in range(rng.randint(0, 6)))})
    return list(zip(cuts, cuts[1:]))


def both(tiles, ranges, args, store_args, fields=None):
    """(C, Python) numbers of one walk."""
    (preload, sync_s, sync, hbm_stream_bw, l2_read_bw, hbm_bw, serial) = args
    c = cv._cwalk.walk(tiles, ranges, cv._cwalk.Fields() if fields is None else fields,
                       preload, sync_s, sync, hbm_stream_bw, l2_read_bw, hbm_bw, serial,
                       cv._store_terms, store_args, cv.WALK_PARTS, cv.KV_BUFFERS)
    py = cv._walk_numbers(cv._step_fields(tiles, ranges), ranges, preload, sync_s, sync,
                          hbm_stream_bw, l2_read_bw, hbm_bw, serial, store_args, False)
    return c, py


def test_the_c_walk_gives_the_python_walks_numbers_to_the_last_bit():
    """On 1,500 random walks (zero, negative, -0.0 and int fields, masks, V loads
    beyond the data, stores to L2 and HBM or none, flash and run-ahead 1-5 (more
    than the steps too), copies on the hbm unit, flags of no time or negative, one
    step and 16, the walk's cuts and random ones), through one Fields table as an
    op's walks share it: the same tuple, every float by repr (so -0.0 and the last
    bit count), every int and flag, the hbm parts and heads."""
    chip = Chip(resolve("ascend").spec)
    rng = random.Random(20261207)
    fields = cv._cwalk.Fields()
    seen = {"flash": 0, "misses": 0, "V loads": 0, "stores to HBM": 0, "parts > 1": 0}
    for trial in range(1500):
        if trial % 50 == 0:
            fields = cv._cwalk.Fields()  # (a new op)
        tiles = random_tiles(rng)
        ranges = _ranges(rng, sum(t[2] for t in tiles), trial)
        preload = rng.choice([0, 0, 1, 2, 4, 5, 40])
        sync_s = rng.choice([0.0, 3e-7, 1e-9, -1e-9, 0, 2])  # (an int: Python's int products)
        serial = rng.choice([1, 1, 3])
        frac, n_vecs = rng.choice([1.0, 0.3, 0.0]), rng.choice([1, 2])
        unit_bw = chip.mte3_bw * rng.choice([1.0, 0.01])
        rates = min(unit_bw, chip.hbm_stream_bw), min(unit_bw, chip.l2_write_bw)
        store_args = (n_vecs, frac, *rates, chip.hbm_bw, serial)

        args = (preload, sync_s, sync_s if sync_s > 0.0 else 0.0, chip.hbm_stream_bw,
                chip.l2_read_bw, chip.hbm_bw, serial)
        c, py = both(tiles, ranges, args, store_args, fields)
        assert c is not None, trial
        assert repr(c) == repr(py), trial
        assert [type(x) for x in c] == [type(x) for x in py], trial
        seen["flash"] += preload == 0
        seen["misses"] += c[30] > 0
        seen["V loads"] += c[29] > 0
        seen["stores to HBM"] += c[32] > 0
        seen["parts > 1"] += len(c[37]) > 1
    assert min(seen.values()) > 100, seen  # every branch met, often
    assert len(fields) > 0


def test_the_c_walk_leaves_what_it_does_not_take_to_python():
    """A walk the C does not take returns None, and _walk_sums then gives the Python
    walk's sums: a field that is not a plain float or int (a numpy-like float
    subclass), an int beyond 2**53, a byte count that is not finite (Python's round
    raises, and so does the walk), a parameter that is not a plain number (a bool
    preload, a float subclass, a float copy count), no step."""
    chip = Chip(resolve("ascend").spec)
    rng = random.Random(3)
    store_args = (2, 1.0, chip.hbm_stream_bw, chip.l2_write_bw, chip.hbm_bw, 1)

    args = (1, 3e-7, 3e-7, chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw, 1)

    class F(float):
        pass

    for bad, raises in (({"load_hbm": F(1e3)}, None), ({"load_hbm": 2**60}, None),
                        ({"load_hbm": 1e3, "mask_hbm": float("nan")}, ValueError),
                        ({"load_hbm": float("inf")}, OverflowError)):
        tiles = random_tiles(rng)
        runs, whole, n = tiles[0]
        whole = replace(whole, **bad)
        tiles[0] = (runs, whole, n)
        ranges = [(0, sum(t[2] for t in tiles))]  # (one step: the tile's sum is read)
        if raises is not None:  # (C: None, then the Python walk raises)
            with pytest.raises(raises):
                both(tiles, ranges, args, store_args)
            continue
        c, py = both(tiles, ranges, args, store_args)
        assert c is None and py[18] >= round(bad["load_hbm"]), bad  # (the Python walk ran)
    tiles = random_tiles(rng)
    ranges = cv._steps(sum(t[2] for t in tiles))
    for i, bad in ((0, True), (1, F(3e-7)), (5, F(chip.hbm_bw)), (6, 2.0)):  # (not plain)
        odd = list(args)
        odd[i] = bad
        assert both(tiles, ranges, tuple(odd), store_args)[0] is None, (i, bad)
    assert both(tiles, ranges, args, store_args)[0] is not None
    assert cv._cwalk.walk([], [], cv._cwalk.Fields(), *args, cv._store_terms, store_args,
                          cv.WALK_PARTS, cv.KV_BUFFERS) is None


def _sums(got: cv._WalkSums) -> str:
    return repr((got.busy, got.nbytes, got.actions, got.count, got.path_s, got.heads,
                 got.hbm_parts))


@pytest.mark.parametrize("preset", ["ascend", "ascend-910a"])
def test_walk_sums_are_the_same_with_the_c_walk_and_without(preset):
    """cv_pipeline._walk_sums (what an analytical walk adds to the op) with the C walk
    and with the Python one: the same busy times, bytes, actions, task count, critical
    path, heads and hbm parts (repr), on random walks with one lane per vector core or
    grouped, copies, stores to HBM or L2."""
    chip = Chip(resolve(preset).spec)
    rng = random.Random(11)
    for trial in range(300):
        tiles = random_tiles(rng)
        core = rng.randrange(chip.n_cube)
        vecs = chip.vecs_of(core)
        teams = [vecs] if rng.random() < 0.7 else [[v] for v in vecs]
        kw = dict(preload=rng.choice([0, 1, 2, 4]), sync_s=rng.choice([0.0, 3e-7]),
                  store_bw=chip.mte3_bw * len(vecs),
                  store_hbm_fraction=rng.choice([1.0, 0.3, 0.0]), k1=rng.choice([1, 1, 3]))
        got = {}
        for on in (True, False):
            with compiled(on):
                got[on] = _sums(cv._walk_sums(chip, None, tiles, teams, len(vecs),
                                              with_actions=False, **kw))
        assert got[True] == got[False], (trial, kw)


def _distinct_prefill(tmp_path, seq_len: int, attention: str = "auto") -> str:
    """Llama-2-7B prefill with every layer keeping a different share of the tokens (as
    benchmarks/bench_speed.py's goal workload: 1.00 at the first layer, 0.01 less at
    each one after)."""
    path = tmp_path / f"distinct-{seq_len}-{attention}.json"
    path.write_text(json.dumps({
        "name": "llama-2-7b-distinct", "model": "llama-2-7b", "phase": "prefill",
        "seq_len": seq_len, "dtype": "fp16", "devices": 1,
        "tiling": {"attention": attention},
        "pruning": [{"method": "spatten", "keep": [round(1.0 - 0.01 * i, 2)
                                                   for i in range(32)]}]}))
    return str(path)


def _report(r) -> str:
    return repr((r.rows, r.totals))


@pytest.mark.parametrize("case", [(4096, "auto"), (1024, "flash"), ("decode", None)])
def test_a_workloads_attentions_give_the_same_report_with_the_c_walk(tmp_path, monkeypatch,
                                                                      case):
    """Every attention op of a real workload at the analytical fidelity: the report
    (rows and totals, by repr) the same with the C walk as with the Python one, and
    every walk taken by the C (none left to Python): the Llama-2-7B prefill at 4K with
    every layer distinct (the speed goal's workload, issue 14), at 1K with one-level
    flash (no run-ahead), and the shipped 7B decode (split-KV: hbm parts)."""
    seq_len, attention = case
    wl = str(ROOT / "workloads" / "llama2-7b-decode.yaml") if seq_len == "decode" else \
        _distinct_prefill(tmp_path, seq_len, attention)
    calls = {"walks": 0, "left": 0}
    walk = cv._cwalk.walk

    class Counted:
        Fields = cv._cwalk.Fields

        @staticmethod
        def walk(*args):
            got = walk(*args)
            calls["walks"] += 1
            calls["left"] += got is None
            return got

    monkeypatch.setattr(cv, "_cwalk", Counted)
    reports = {}
    for on in (True, False):
        with compiled(on):
            reports[on] = _report(hwsim.simulate(wl, "ascend", fidelity="analytical"))
    assert reports[True] == reports[False]
    # (a prefill's 32 distinct attentions, a walk per core each; the decode's one op)
    assert calls["walks"] >= (1 if seq_len == "decode" else 32) and calls["left"] == 0, calls


def test_the_environment_switches_the_c_walk_off():
    code = ("from hwsim.accelerators.ascend import cv_pipeline as cv; "
            "print(cv.COMPILED)")
    got = {}
    for value in ("", "0", "1"):
        env = dict(os.environ, HWSIM_PURE_PYTHON=value, PYTHONPATH=str(ROOT))
        got[value] = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip()
    assert got == {"": "True", "0": "True", "1": "False"}


def _random_walk_sums(rng: random.Random) -> cv._WalkSums:
    """A walk's sums with random roles (some repeated, some without a head), bounds
    (one or two, -0.0 and int seconds among them), byte counts (ints, some big),
    actions, hbm parts (none at times), task count and path."""
    roles = ["mte2", "hbm", "cube", "fix", "cflag", "vec", "vflag", "mte3"]
    busy = []
    for role in rng.sample(roles, rng.randint(0, len(roles))) + rng.sample(roles, 1):
        bounds = [(rng.choice(["memory", "onchip", "compute", "latency"]), _value(rng, 1e-4))
                  for _ in range(rng.randint(0, 2))]
        busy.append((role, _value(rng, 1e-3), bounds))
    heads = {r: _value(rng, 1e-5) for r in roles if rng.random() < 0.6}
    nbytes = [(k, rng.choice([0, 7, rng.randint(0, 2**40), 2**70]))
              for k in rng.sample(["l2_read", "dram_read", "mask_dram_read", "dram_write"],
                                  rng.randint(0, 4))]
    actions = [(k, _value(rng, 1e6)) for k in rng.sample(
        ["hbm_byte", "l2_byte", "l1_byte", "ub_byte", "mac_fp16"], rng.randint(0, 5))]
    parts = tuple((_value(rng, 1e-5), _value(rng, 1e-4), _value(rng, 1e-4))
                  for _ in range(rng.choice([0, 1, 4])))
    return cv._WalkSums(busy, nbytes, actions, rng.randint(1, 300), _value(rng, 1e-3), heads,
                        None, parts)


def _acc_state(acc) -> str:
    return repr((acc.busy, acc.head, acc.nbytes, acc.actions, acc.parts, acc.finish,
                 acc.count))


def test_the_c_add_to_adds_what_the_python_adds():
    """_WalkSums.add_to in C (``_cwalk.add_to``) against the Python (cv.COMPILED off):
    the accumulator's busy entries, heads, bytes, actions, parts, finish times and count
    the same by repr (every float's last bit, -0.0, ints and their types, the dicts'
    order) and the same task returned, on random walks added one after another to
    random accumulators (units met before or not, heads above, below or at the start,
    starts of 0, -0.0 and negative, parts already on the hbm unit or not)."""
    from hwsim.engine import Accumulator  # noqa: PLC0415

    rng = random.Random(17)
    for trial in range(400):
        units = {r: tuple(f"c{trial % 3}.{r}{i}" for i in range(rng.choice([1, 1, 2])))
                 for r in ("mte2", "cube", "fix", "cflag", "vec", "vflag", "mte3")}
        units["hbm"] = ("hbm",)
        accs = [Accumulator(), Accumulator()]
        seed = rng.random()
        for acc in accs:  # (the same random start for both)
            r2 = random.Random(seed)
            for _ in range(r2.randint(0, 3)):
                acc.add(r2.choice([*units["cube"], *units["vec"], "hbm"]), r2.random() * 1e-4,
                        {"l2_read": 5}, {"l2_byte": 1.5}, (), "compute", "", 1, False)
            if r2.random() < 0.5:
                acc.add_part("hbm", r2.random() * 1e-5, 1e-6, 2e-6)
        for _ in range(rng.randint(1, 4)):
            ws = _random_walk_sums(rng)
            start = rng.choice([0.0, -0.0, -1e-6, rng.random() * 1e-4])
            after = rng.choice([0.0, 3e-7])
            with compiled(False):
                want = ws.add_to(accs[0], units, start, after)
            with compiled(True):
                got = ws.add_to(accs[1], units, start, after)
            assert got == want and type(got[0]) is type(want[0]), trial
            assert _acc_state(accs[1]) == _acc_state(accs[0]), trial


def _as(kinds: dict, choice: str, rng: random.Random, b):
    """Block ``b`` as the kind ``choice`` names (a random one for "mixed")."""
    return kinds[rng.choice(list(kinds)) if choice == "mixed" else choice](b)


def test_the_c_walk_reads_a_blocks_slots_in_place_and_others_with_getattr():
    """Fields reads a Block's fields (a dataclass with slots) from its slots in place and
    any other object's with getattr: walks of Blocks, of plain objects with the same
    attributes (no slots), of a Block subclass whose ``qk_s`` is a property (getattr's
    answer, not the slot's, is the Python walk's), and of the three mixed block to block
    (the type changing between reads) give the Python walk's numbers, by repr; a Block
    whose slot is empty (``del``) is left to Python, which raises as getattr does."""
    chip = Chip(resolve("ascend").spec)
    rng = random.Random(8)
    args = (2, 3e-7, 3e-7, chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw, 1)
    store_args = (2, 1.0, chip.hbm_stream_bw, chip.l2_write_bw, chip.hbm_bw, 1)
    names = [f.name for f in fields(cv.Block)]

    class Plain:
        def __init__(self, b):
            for name in names:
                setattr(self, name, getattr(b, name))

    slot = cv.Block.__dict__["qk_s"]  # (the slot's member descriptor)

    class Doubled(cv.Block):
        __slots__ = ()
        qk_s = property(lambda self: 2.0 * slot.__get__(self) + 1e-9,
                        lambda self, v: slot.__set__(self, v))

    kinds = {"block": lambda b: b, "plain": Plain,
             "doubled": lambda b: Doubled(*(getattr(b, n) for n in names))}
    for trial in range(120):
        choice = ["block", "plain", "doubled", "mixed"][trial % 4]
        tiles = []
        for runs, whole, n in random_tiles(rng):
            tiles.append(([(_as(kinds, choice, rng, b), k) for b, k in runs],
                          _as(kinds, choice, rng, whole), n))
        ranges = _ranges(rng, sum(t[2] for t in tiles), trial)
        c, py = both(tiles, ranges, args, store_args)
        assert c is not None and repr(c) == repr(py), (trial, choice)
    tiles = random_tiles(rng)
    runs, whole, n = tiles[0]
    empty = replace(whole)
    del empty.load_v
    tiles[0] = (runs, empty, n)
    ranges = [(0, sum(t[2] for t in tiles))]
    assert cv._cwalk.walk(tiles, ranges, cv._cwalk.Fields(), *args, cv._store_terms,
                          store_args, cv.WALK_PARTS, cv.KV_BUFFERS) is None
    with pytest.raises(AttributeError):
        cv._step_fields(tiles, ranges)
