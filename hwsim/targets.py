"""The target protocol and the one registry of targets.

A *target* is a model of one machine. It provides:

- ``spec_class``: a frozen dataclass of hardware parameters (units in names),
  loaded from YAML presets shipped in the target's ``presets/`` folder;
- ``lower(op, graph, spec, tiling) -> list[Task]``: the op cut into tiles, each
  with its unit, duration, bytes per memory level, actions and bound; an op kind
  it cannot cost raises :class:`~hwsim.errors.UnsupportedOpError`;
  ``lower_summary`` is what the ``analytical`` fidelity asks instead: only the
  tasks' summary (by default :meth:`Target.lower`'s tasks summarized);
- ``energy_table(spec)``: prices per action and static power;
- ``headline(spec)``: one line of headline numbers for ``hwsim targets``;
- ``executed_flops(op, graph, spec, tiling)``: the FLOPs the op's kernels
  execute (a causal or windowed attention skips wholly masked tiles; the
  default counts visible score elements exactly, a tiled target counts its
  tiles); throughput and utilisation use it;
- ``describe(op, graph, spec, tiling)``: optionally, one line on how an op
  runs (kernels and occupancy, tiles, time split), shown in tables and CSV;
- ``capacity_field`` and ``footprint(graph, spec, tiling)``: the spec field
  that holds the device's DRAM capacity, and what one device must hold
  (:mod:`hwsim.capacity`: weights, KV cache, the largest op's working set plus
  the target's workspace); every simulation checks one against the other;
- ``peak_flops_per_s(spec, dtype)`` and ``peak_dram_bw_bytes_per_s(spec)``:
  the machine's ceilings (its fastest unit for that type; the datasheet DRAM
  bandwidth), which no op may exceed (the property tests hold every target to
  them) and which roofline plots draw;
- ``pools(spec)``: shared resources with a capacity (DRAM channels, links)
  that tasks hold besides their unit;
- ``metrics(report)``: optionally, figures of a finished report that the
  generic report does not have (DRAM bytes by tensor class, engine cycles),
  usable as validation metrics; ``summary_lines(report)`` prints the main
  ones under the table's totals.
- ``onchip_capacity_bytes(spec)``, ``carries(op)`` and ``lower_carried(op, graph,
  spec, tiling, carry)``: optionally, on-chip state between ops
  (:mod:`hwsim.onchip`): the last-level cache bytes that may carry a tensor from
  one op to the next (0, the default: none), which ops' lowerings honour a plan,
  and the lowering of an op that reads some inputs from that cache and leaves
  some outputs unwritten (such a target's ``describe`` then takes the carry as a
  fifth argument);
- ``calibration_cases(spec, preset)``: the target's microbenchmark reproductions
  (:class:`hwsim.calibrate.CalibrationCase`), by default from the module
  ``calibration`` of the target's package (``hwsim/accelerators/<target>/
  calibration.py``) when there is one; ``hwsim calibrate`` prints them.

Targets are found through the entry-point group ``hwsim.targets`` (so a
third-party package can add one); the built-in ones are also registered
directly, so a source checkout works without installation.

A target is named on the command line by its name (its default preset), by a
preset name, or by the path of a hardware YAML file whose ``target:`` key names
the model it uses.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Mapping

from . import yamlfile
from .errors import Collector, InputError, Problem, UnsupportedOpError
from .spec import build_spec, spec_to_dict, suggest

BUILTIN = {name: f"hwsim.accelerators.{name}:TARGET"
           for name in ("roofline", "ascend", "volta", "armv8", "spatten")}

# The host each built-in target's ops are issued from (hwsim.runtime.PLATFORMS).
HOST_PLATFORMS = {"volta": "cuda", "ascend": "cann", "armv8": "cpu"}
# The streams ops run on (:mod:`hwsim.engine.streams`), beside the compute stream every
# target has: a GPU's NCCL communication stream and copy engines (CUDA C Programming
# Guide, "Asynchronous Concurrent Execution": kernels, copies and communication kernels
# on different streams overlap), an Ascend NPU's HCCS collectives beside its AI cores
# (the links and their DMA work while the cube and vector units compute), a roofline's
# link; a CPU's cores run its collectives themselves, SpAtten has no links.
STREAMS = {"volta": ("compute", "comm", "copy"), "ascend": ("compute", "comm"),
           "roofline": ("compute", "comm")}


class Target:
    """Base class of targets. Subclasses set the class attributes and ``lower``."""

    name: str = ""
    description: str = ""
    spec_class: type = object
    default_preset: str = ""
    presets_dir: Path = Path()
    # the spec field with the DRAM capacity in bytes, one name on every target (issue 17);
    # a spec without it (or "" here) is not checked
    capacity_field: str = "dram_bytes"
    memory_name: str = "DRAM"  # what that memory is called in messages (HBM, DDR4)

    def lower(self, op, graph, spec, tiling) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def lower_summary(self, op, graph, spec, tiling, carry=None):
        """``(summary, tasks)``: :func:`hwsim.engine.summarize` of :meth:`lower`'s tasks
        (:meth:`lower_carried`'s with a ``carry``; with :meth:`pools`) and how many there
        are, all that the ``analytical`` fidelity reads of them. A target whose lowering
        can hand its tasks to an :class:`hwsim.engine.Accumulator` instead of making them
        overrides this (the same summary to the last bit: no
        :class:`~hwsim.engine.Task` is made)."""
        from .engine import summarize  # noqa: PLC0415

        tasks = (self.lower_carried(op, graph, spec, tiling, carry) if carry
                 else self.lower(op, graph, spec, tiling))
        return summarize(tasks, self.pools(spec)), len(tasks)

    def energy_table(self, spec):  # pragma: no cover - abstract
        raise NotImplementedError

    def onchip_capacity_bytes(self, spec) -> float:
        """Bytes of the last-level cache that may carry tensors between ops
        (:mod:`hwsim.onchip`); 0: every op starts with a cold cache."""
        return 0.0

    def carries(self, op) -> bool:
        """Whether :meth:`lower_carried` honours a plan for ``op`` (reads the inputs the
        plan puts on chip from the cache, leaves its kept outputs unwritten)."""
        return False

    def lower_carried(self, op, graph, spec, tiling, carry) -> list:
        """Tasks of ``op`` with ``carry``'s inputs on chip and its outputs kept there
        (:class:`hwsim.onchip.Carry`); an empty carry is :meth:`lower` itself."""
        if carry:
            raise NotImplementedError(f"target {self.name!r} does not carry tensors on chip")
        return self.lower(op, graph, spec, tiling)

    def headline(self, spec) -> str:
        return ""

    def cache_key(self, op, graph, spec):
        """Besides shapes and types, what an op's cost depends on (None: nothing).

        Identical ops are simulated once; a target whose costs follow the data
        (a top-k engine run on each layer's real scores) names what differs."""
        return None

    def executed_flops(self, op, graph, spec, tiling) -> int:
        """FLOPs ``op``'s kernels execute: the counted FLOPs, except that a causal or
        sliding-window attention skips what is masked. The default is exact (a
        kernel that skips every masked element); a target whose kernels compute
        whole tiles overrides it with its tile sizes
        (:func:`hwsim.ir.kinds.executed_flops`)."""
        from .ir.kinds import executed_flops  # noqa: PLC0415

        return executed_flops(op)

    def footprint(self, graph, spec, tiling):
        """What one device holds (:class:`hwsim.capacity.Footprint`). A target adds
        its kernels' workspace or keeps part of the KV cache elsewhere."""
        from .capacity import footprint  # noqa: PLC0415

        return footprint(graph)

    def peak_flops_per_s(self, spec, dtype: str) -> float:
        """The fastest rate any unit of the machine computes ``dtype`` at (0: none)."""
        raise NotImplementedError(f"target {self.name!r} does not state its peak FLOP/s")

    def peak_dram_bw_bytes_per_s(self, spec) -> float:
        """The DRAM bandwidth of the datasheet: no op moves DRAM bytes faster."""
        raise NotImplementedError(f"target {self.name!r} does not state its DRAM bandwidth")

    def capacity_bytes(self, spec) -> float:
        """The device's DRAM capacity (0: not checked)."""
        return float(getattr(spec, self.capacity_field, 0) or 0) if self.capacity_field else 0.0

    def capacity_hint(self, spec) -> str:
        """What to try when a workload does not fit (appended to the error)."""
        return "; use more devices, a shorter sequence or a fused attention"

    def describe(self, op, graph, spec, tiling, carry=None) -> str:
        """A short line on how ``op`` runs (kernels, occupancy, tiles), for reports;
        ``carry``: what it reads from or leaves in the cache (:meth:`lower_carried`)."""
        return ""

    def pools(self, spec) -> dict[str, int]:
        """Shared pools (name -> capacity) that tasks may name, e.g. DRAM channels."""
        return {}

    def metrics(self, report) -> dict[str, Any]:
        """Target-specific figures of a report on this target (validation metrics)."""
        return {}

    def summary_lines(self, report) -> list[str]:
        """Lines the terminal table prints under its totals."""
        return []

    def calibration_module(self):
        """The module ``<target package>.calibration``, imported on first use (None: none)."""
        import importlib  # noqa: PLC0415

        package = type(self).__module__.rpartition(".")[0] or type(self).__module__
        name = f"{package}.calibration"
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name in (name, package):
                return None
            raise  # the module exists but something it imports does not: a bug, not "none"

    def calibration_cases(self, spec, preset: str = "") -> list:
        """Microbenchmark points run through ``spec`` (:class:`hwsim.calibrate.CalibrationCase`).

        The default calls ``cases(spec, preset)`` of :meth:`calibration_module`
        (``cases(spec)`` if it takes one argument); ``preset`` names the machine the
        spec was read for (a preset name or a YAML path), so that a module gives only
        the measurements of that machine. No module, or absent data files, give no
        cases."""
        mod = self.calibration_module()
        return call_cases(mod.cases, spec, preset) if mod is not None else []

    def calibration_files(self) -> list[str]:
        """The data files the calibration module reads (relative to the calibration folder)."""
        mod = self.calibration_module()
        return list(getattr(mod, "FILES", ())) if mod is not None else []

    def host_platform(self, spec) -> str:
        """The kind of host that issues this machine's ops (:mod:`hwsim.runtime`):
        ``cuda``, ``cann``, ``cpu``, or "" for a machine without a host lane (an
        accelerator that sequences its own ops, a roofline bound): its ops were all
        enqueued at t = 0, at no host cost, whatever the workload's runtime (a queued
        launch, :meth:`queued_launch_s`, still hides behind the op before)."""
        return HOST_PLATFORMS.get(self.name, "")

    def streams(self, spec) -> tuple[str, ...]:
        """The streams this machine runs ops on (:data:`STREAMS`): ``compute`` always;
        ``comm`` where collectives overlap compute (tiling-AllReduce,
        :mod:`hwsim.overlap`), ``copy`` where host transfers do."""
        return STREAMS.get(self.name, ("compute",))

    def host_kv_fraction(self, spec) -> float:
        """The share of the KV cache kept in host memory (CPU-GPU cooperation): its
        blocks stream in on the ``copy`` stream (:mod:`hwsim.overlap`). 0: none."""
        return 0.0

    def without_host_kv(self, spec):
        """``spec`` with no host-resident KV cache: what the attention's pieces are
        lowered with once the copies run on their own stream."""
        return spec

    def transfer(self, nbytes: float, direction: str, spec) -> list:
        """The tasks of one host transfer of ``nbytes`` (``direction``: ``h2d`` or
        ``d2h``) on the ``copy`` stream; a machine without one cannot."""
        raise UnsupportedOpError(self.name, f"{direction} copy", "host transfer")

    def queued_launch_s(self, spec) -> float:
        """Seconds of an op's own device time (the launch of its first kernel) that it
        overlaps with the op before it when it was enqueued before that op ended
        (:func:`hwsim.runtime.schedule`): the launch latency less the gap the device
        keeps between two queued kernels. 0 (the default): nothing overlaps, the op's
        device time follows the previous op's end whole."""
        return 0.0

    def power_limit_w(self, spec) -> float:
        """The spec's ``power_limit_w`` (0: none stated): a GPU's board power, a CPU
        socket's TDP. Firmware lowers the clock to stay under it, so no op runs
        faster than its energy allows (:func:`hwsim.simulate.power_capped_s`)."""
        return float(getattr(spec, "power_limit_w", 0.0) or 0.0)

    def presets(self) -> dict[str, Path]:
        out = {}
        for p in sorted(self.presets_dir.glob("*.yaml")):
            out[p.stem] = p
        return out


@dataclass(frozen=True)
class ResolvedTarget:
    """A target with its spec read: the preset's name (or the file), the spec and the
    file it came from."""

    target: Target
    preset: str  # preset name, or the file path for a user YAML
    spec: Any
    source: str  # file the spec was read from

    @property
    def name(self) -> str:
        return self.target.name

    def to_dict(self) -> dict:
        return {"name": self.target.name, "preset": self.preset, "spec": spec_to_dict(self.spec)}


def _load(ref: str) -> Target:
    module, _, attr = ref.partition(":")
    mod = __import__(module, fromlist=[attr])
    return getattr(mod, attr)


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Target]:
    """All targets by name: the built-ins, then entry points of ``hwsim.targets``."""
    targets: dict[str, Target] = {}
    for name, ref in BUILTIN.items():
        targets[name] = _load(ref)
    from importlib import metadata  # noqa: PLC0415 (only when every target is asked for)

    try:
        eps = metadata.entry_points(group="hwsim.targets")
    except TypeError:  # pragma: no cover - python < 3.10 API
        eps = metadata.entry_points().get("hwsim.targets", [])
    for ep in eps:
        if ep.name not in targets:
            targets[ep.name] = ep.load()
    return targets


def _builtin_of(text: str) -> tuple[Target, str, Path] | None:
    """A built-in target's name or one of its presets: (target, preset, path), importing
    that target alone (the five import numpy, simpy and their models: a run on one
    should not pay for the others). A built-in's presets are the YAML files in its
    package's ``presets`` folder (its ``presets_dir``; a test holds the two the same);
    a name a built-in has wins over a plugin's. None for anything else."""
    for name, ref in BUILTIN.items():
        if text == name:
            target = _load(ref)
            default = target.default_preset
            # (presets()' entry for it without listing the folder, which a sweep would
            # pay per point; listed as before when it is not a plain file there)
            path = target.presets_dir / f"{default}.yaml"
            return target, default, path if path.is_file() else target.presets()[default]
        for folder in _package_dirs(ref.partition(":")[0]):
            path = _preset_file(folder, text)
            if path is not None:
                return _load(ref), text, path
    return None


def _package_dirs(module: str) -> list[str]:
    """The folders of built-in package ``module`` (found, not run): where its
    ``presets`` folder is. Found once per process: hwsim's own packages do not move
    while it runs (the preset files in them are looked for on every call)."""
    dirs = _PACKAGE_DIRS.get(module)
    if dirs is None:
        import importlib.util  # noqa: PLC0415

        spec = importlib.util.find_spec(module)
        dirs = _PACKAGE_DIRS[module] = list((spec.submodule_search_locations or [])
                                            if spec else [])
    return dirs


_PACKAGE_DIRS: dict[str, list[str]] = {}


def _preset_file(folder: str, name: str) -> Path | None:
    """``folder/presets/NAME.yaml`` if that file exists; None for any other ``name``
    (one too long for a file name, or holding a NUL, is no preset either)."""
    try:
        path = Path(folder) / "presets" / f"{name}.yaml"
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def known_names() -> list[str]:
    """Every target and preset name (all targets imported: for messages)."""
    return sorted(set(registry()) | set(all_presets()))


def is_known(text: str) -> bool:
    """Whether ``text`` names a target or a preset (not a hardware YAML path). A
    built-in name or preset is found from the file names alone, importing no
    target; only other names load the registry (plugins' entry points)."""
    import importlib.util  # noqa: PLC0415

    if text in BUILTIN:
        return True
    if not text or "/" in text or os.path.sep in text or text.startswith("."):
        return False
    for ref in BUILTIN.values():
        spec = importlib.util.find_spec(ref.partition(":")[0])
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if _preset_file(folder, text) is not None:
                return True
    return text in known_names()


def all_presets() -> dict[str, tuple[Target, Path]]:
    out = {}
    for t in registry().values():
        for preset, path in t.presets().items():
            out[preset] = (t, path)
    return out




def read_preset(path: Path | str) -> dict:
    """Parse a hardware YAML file (safe loader) and check its top-level keys.

    The file is read every time and its parse kept by its text
    (:func:`hwsim.yamlfile.parse`: a sweep resolves its target once per point); a
    parse kept per path and modification time would read a file rewritten at the
    same size within the file system's time-stamp granularity as it was."""
    path = str(path)
    try:
        data = yamlfile.read(path, "hardware file")
    except FileNotFoundError:
        raise InputError("hardware file not found", source=path) from None
    errs = Collector(path)
    if not isinstance(data, dict):
        errs.add("", "expected a mapping with keys target, name, spec")
        errs.raise_if_any()
    for key in data:
        if key not in ("target", "name", "description", "spec", "sources"):
            errs.add(str(key), "unknown key" + suggest(str(key), ["target", "name", "spec"]))
    if "target" not in data:
        errs.add("target", f"missing (one of: {', '.join(registry())})")
    elif not isinstance(data["target"], str):
        errs.add("target", f"expected a target name (one of: {', '.join(registry())}), got "
                 f"{data['target']!r}")
    elif data["target"] not in BUILTIN and data["target"] not in registry():
        errs.add("target", f"unknown target {data['target']!r} (known: {', '.join(registry())})")
    if not isinstance(data.get("spec"), dict):
        errs.add("spec", "missing or not a mapping")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            errs.add(key, f"expected text, got {data[key]!r}")
    errs.raise_if_any()
    return data


def _resolve_other(text: str) -> tuple[Target, str, Path]:
    """A target or preset of an installed plugin, or a hardware YAML path (all
    targets loaded)."""
    reg = registry()
    presets = all_presets()
    if text in reg:
        target = reg[text]
        return target, target.default_preset, presets[target.default_preset][1]
    if text in presets:
        target, path = presets[text]
        return target, text, path
    if text.endswith((".yaml", ".yml")) or os.path.sep in text:
        path = Path(text)
        return reg[read_preset(path)["target"]], str(path), path
    known = sorted(set(reg) | set(presets))
    raise InputError(f"unknown target {text!r}{suggest(text, known)} "
                     f"(known: {', '.join(known)})", source="--target")


def resolve(text: str, overrides: Mapping[str, Any] | None = None) -> ResolvedTarget:
    """A target name, preset name or hardware YAML path -> target and its spec.

    ``overrides`` maps spec field names (no ``target.`` prefix) to values.
    """
    builtin = _builtin_of(text) if os.path.sep not in text and "/" not in text \
        and not text.endswith((".yaml", ".yml")) else None
    if builtin is not None:
        target, preset, path = builtin
    else:
        target, preset, path = _resolve_other(text)
    data = read_preset(path)
    if data["target"] != target.name:
        raise InputError(f"preset is for target {data['target']!r}, not {target.name!r}",
                         source=str(path), field="target")
    spec_data = dict(data["spec"])
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        head, _, entry = key.partition(".")
        if entry and isinstance(spec_data.get(head), dict):
            # one entry of a mapping field: target.vector_cycles_per_repeat.exp=8
            spec_data[head] = {**spec_data[head], entry: value}
        else:
            spec_data[key] = value
    # the same data gives the same (frozen) spec: built once and handed out again, so
    # a sweep's points share it (and what the target keeps per spec)
    key = (target.spec_class, str(path), repr(spec_data))
    spec = _SPECS.get(key)
    if spec is not None:
        return ResolvedTarget(target, preset, spec, str(path))
    try:
        spec = build_spec(target.spec_class, spec_data, str(path))
    except InputError as e:
        # a problem with an overridden field is the command line's, not the preset's
        raise InputError([
            Problem("--set", "target." + p.field.split(".", 1)[1], p.message)
            if p.field.split(".", 1)[-1] in overrides
            or any(k.partition(".")[0] == p.field.partition(".")[2].partition(".")[0]
                   for k in overrides) else p
            for p in e.problems]) from None
    if len(_SPECS) >= 256:  # a sweep over many specs: bounded
        _SPECS.clear()
    _SPECS[key] = spec
    return ResolvedTarget(target, preset, spec, str(path))


_SPECS: dict[tuple, Any] = {}  # (spec class, file, repr of its data) -> the built spec


# ---------------------------------------------------------------- hwsim targets --fields
_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*)\s*:(?P<value>[^#]*?)\s*"
                   r"(?:#\s?(?P<comment>.*))?$")


def preset_sources(path: Path | str) -> tuple[list[str], dict[str, str]]:
    """The sources a preset file states as comments: its header (the comment lines
    before the first key, where abbreviations are defined) and, per spec field, the
    comment on the field's line (for a mapping field, each entry's comment after
    its key). Comments are the file's only record of where a number comes from."""
    header: list[str] = []
    by_field: dict[str, list[str]] = {}
    seen_key, in_spec, field, field_indent = False, False, "", 0
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not seen_key:
            header.append(stripped.lstrip("#").strip())
        m = _LINE.match(raw)
        if not stripped or stripped.startswith("#") or m is None:
            continue
        seen_key = True
        indent = len(m["indent"])
        if indent == 0:
            in_spec, field = m["key"] == "spec", ""
            continue
        if not in_spec:
            continue
        comment = (m["comment"] or "").strip()
        if field and indent > field_indent:  # an entry of a mapping field
            if comment:
                by_field[field].append(f"{m['key']}: {comment}")
            continue
        field, field_indent = m["key"], indent
        by_field[field] = [comment] if comment else []
    return [h for h in header if h], {k: "; ".join(v) for k, v in by_field.items() if v}


def field_rows(resolved: ResolvedTarget) -> list[dict[str, str]]:
    """Every settable field of a resolved target: name, unit, value (the preset's, or
    the spec's default), what it means (its ``spec_field`` help) and its source (the
    hardware file's ``sources:`` entry for the field and the comment on its line, or
    that the value is the spec's default)."""
    from .units import format_quantity, unit_of  # noqa: PLC0415

    _, comments = preset_sources(resolved.source)
    data = read_preset(resolved.source)
    in_preset = data["spec"]
    declared = data.get("sources") if isinstance(data.get("sources"), dict) else {}
    rows = []
    for f in dataclass_fields(resolved.spec):
        unit = unit_of(f.name)
        value = getattr(resolved.spec, f.name)
        if isinstance(value, dict):
            shown = ", ".join(f"{k}: {format_quantity(v, unit)}" for k, v in value.items())
        elif isinstance(value, tuple):
            shown = "[" + ", ".join(format_quantity(v, unit) for v in value) + "]"
        else:
            shown = format_quantity(value, unit)
        if f.name in in_preset:
            given = [str(declared[f.name])] if f.name in declared else []
            given += [comments[f.name]] if f.name in comments else []
            source = "; ".join(given) or "(the preset gives no source)"
        else:
            source = f"the {type(resolved.spec).__name__} default (not set by the preset)"
        rows.append({"field": f.name, "unit": unit, "value": shown,
                     "help": f.metadata.get("help", ""), "source": source})
    return rows


def format_fields(text: str) -> str:
    """``hwsim targets --fields T``: the settable fields of target (or preset) ``T``."""
    try:
        resolved = resolve(text)
    except InputError as e:  # name the option the user typed
        raise InputError([Problem("--fields", p.field, p.message) if p.source == "--target"
                          else p for p in e.problems]) from None
    header, _ = preset_sources(resolved.source)
    rows = field_rows(resolved)
    example = next((f"; a unit may be written: --set target.{r['field']}='{r['value']}'"
                    for r in rows if r["unit"] in ("B/s", "Hz")), "")
    lines = [f"{resolved.name}: {len(rows)} fields, values of preset {resolved.preset} "
             f"(set one with --set target.FIELD=VALUE{example})"]
    if header:
        lines += ["", "The preset's header (it names the sources cited below):"]
        lines += [f"  {h}" for h in header]
    lines.append("")
    for r in rows:
        unit = f" [{r['unit']}]" if r["unit"] else ""
        lines.append(f"{r['field']}{unit} = {r['value']}")
        lines.append(f"    {r['help']}")
        lines.append(f"    source: {r['source']}")
    return "\n".join(lines)


def call_cases(fn, spec, preset: str = "") -> list:
    """``fn(spec, preset)``, or ``fn(spec)`` for a function of one parameter: a
    calibration module's ``cases`` (:class:`hwsim.calibrate.CalibrationCase` each);
    each case without a preset gets ``preset``."""
    import inspect  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415

    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        n = 2
    out = list(fn(spec, preset) if n >= 2 else fn(spec))
    return [c if c.preset or not preset else replace(c, preset=preset) for c in out]
