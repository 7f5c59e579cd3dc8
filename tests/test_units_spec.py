"""Quantities with units, spec dataclasses built from YAML, and the shipped presets."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import yaml
from conftest import dump_yaml

from hwsim.errors import InputError
from hwsim.spec import build_spec, spec_field, spec_help, spec_to_dict
from hwsim.targets import all_presets, read_preset, registry, resolve
from hwsim.units import parse_quantity

REL = 1e-15  # one decimal-to-binary rounding


@pytest.mark.parametrize("value, field, expected", [
    ("64 KiB", "l1_bytes", 65536),
    ("512KiB", "l2_bytes", 512 * 1024),
    ("32 GiB", "dram_bytes", 32 * 2**30),
    ("1 kB", "l1_bytes", 1000),
    ("4 bytes", "word_bytes", 4),
    ("1.8 GHz", "clock_hz", 1.8e9),
    ("1530 MHz", "clock_hz", 1.53e9),
    ("1.6 TB/s", "dram_bw_bytes_per_s", 1.6e12),
    ("900 GB/s", "dram_bw_bytes_per_s", 900e9),
    ("5 us", "kernel_launch_s", 5e-6),
    ("5 µs", "kernel_launch_s", 5e-6),
    ("2 ms", "kernel_launch_s", 2e-3),
    ("3 ns", "kernel_launch_s", 3e-9),
    ("250 W", "static_power_w", 250.0),
    ("15 mW", "static_power_w", 0.015),
    ("125 TFLOP/s", "peak_flops_per_s", 125e12),
    ("0.75 pJ", "mac_pj", 0.75),
    ("1 J", "budget_j", 1.0),
    ("125e12", "peak_flops_per_s", 125e12),  # a number written as a string
    ("1.2e+12", "dram_bw_bytes_per_s", 1.2e12),
    (" 7 ", "cores", 7.0),
    (42, "cores", 42.0),
    (1.5, "clock_hz", 1.5),
    (0, "dram_bytes", 0.0),
])
def test_parse_quantity(value, field, expected):
    got = parse_quantity(value, field)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("value, field, needle", [
    ("1.8 GHz", "l1_bytes", "does not fit field 'l1_bytes'"),
    ("64 KiB", "clock_hz", "does not fit field 'clock_hz'"),
    ("5 us", "dram_bw_bytes_per_s", "does not fit field"),
    ("1.6 TB/s", "kernel_launch_s", "does not fit field"),
    ("1 B/s", "l1_bytes", "does not fit field"),
    ("5 MB", "static_power_w", "does not fit field"),
    ("1 Xs", "kernel_launch_s", "does not fit field"),
    ("3 GHz", "cores", "field 'cores' takes a plain number"),
    ("fast", "clock_hz", "expected a quantity like '64 KiB' or '1.8 GHz'"),
    ("GHz", "clock_hz", "expected a quantity"),
    ("", "clock_hz", "expected a quantity"),
    (True, "cores", "expected a number, got True"),
    (None, "cores", "expected a number or a quantity string"),
    ([1], "cores", "expected a number or a quantity string"),
])
def test_parse_quantity_errors(value, field, needle):
    with pytest.raises(ValueError) as info:
        parse_quantity(value, field)
    assert needle in str(info.value)


# ---------------------------------------------------------------- build_spec
@dataclass(frozen=True)
class DemoSpec:
    cores: int = spec_field(help="cores per chip", minimum=1)
    clock_hz: float = spec_field(1e9, help="clock")
    l1_bytes: int = spec_field(65536, help="L1 per core")
    mode: str = spec_field("fast", help="mode", choices=("fast", "slow"))
    ecc: bool = spec_field(False, help="ECC on DRAM")
    widths: tuple[int, ...] = spec_field((16,), help="vector widths")
    peak_flops_per_s: dict[str, float] = spec_field({}, help="peaks")
    l2_bytes: int | None = spec_field(None, help="L2 (none: no L2)")


def test_build_spec_converts_units_and_types():
    spec = build_spec(DemoSpec, {"cores": 24, "clock_hz": "1.8 GHz", "l1_bytes": "64 KiB",
                                 "mode": "slow", "ecc": True, "widths": [8, "16"],
                                 "peak_flops_per_s": {"fp16": "354 TFLOP/s"},
                                 "l2_bytes": "192 MiB"}, "demo.yaml")
    assert spec == DemoSpec(24, 1.8e9, 65536, "slow", True, (8, 16), {"fp16": 354e12},
                            192 * 2**20)
    assert isinstance(spec.l1_bytes, int) and isinstance(spec.cores, int)
    assert build_spec(DemoSpec, {"cores": 1, "l2_bytes": None}, "d").l2_bytes is None
    assert spec_to_dict(spec)["widths"] == [8, 16]
    assert ("cores", "cores per chip", None) in spec_help(DemoSpec)
    assert ("clock_hz", "clock", 1e9) in spec_help(DemoSpec)


def test_build_spec_collects_every_problem():
    data = {"clock_hz": "1.8 GB", "l1_bytes": 1.5, "mode": "turbo", "ecc": "yes",
            "widths": 16, "coress": 4, "peak_flops_per_s": {"fp16": -1}}
    with pytest.raises(InputError) as info:
        build_spec(DemoSpec, data, "demo.yaml")
    problems = {p.field: p.message for p in info.value.problems}
    assert all(p.source == "demo.yaml" for p in info.value.problems)
    assert problems.keys() == {"spec.coress", "spec.cores", "spec.clock_hz", "spec.l1_bytes",
                               "spec.mode", "spec.ecc", "spec.widths",
                               "spec.peak_flops_per_s"}
    assert problems["spec.coress"] == "unknown field (did you mean 'cores'?)"
    assert problems["spec.cores"].startswith("missing (required: cores per chip)")
    assert "does not fit field 'clock_hz'" in problems["spec.clock_hz"]
    assert problems["spec.l1_bytes"] == "expected an integer, got 1.5"
    assert problems["spec.mode"] == "expected one of fast, slow, got 'turbo'"
    assert problems["spec.ecc"] == "expected true or false, got 'yes'"
    assert problems["spec.widths"] == "expected a list, got 16"
    assert problems["spec.peak_flops_per_s"] == "must be >= 0.0, got -1"
    text = str(info.value)
    assert text.startswith("demo.yaml: spec.")
    assert "(and 7 more:" in text


def test_build_spec_minimum():
    with pytest.raises(InputError, match="spec.cores: must be >= 1, got 0"):
        build_spec(DemoSpec, {"cores": 0}, "d.yaml")


def test_build_spec_needs_a_mapping():
    with pytest.raises(InputError, match="d.yaml: spec: expected a mapping of fields"):
        build_spec(DemoSpec, [1, 2], "d.yaml")


# ---------------------------------------------------------------- presets
PRESETS = sorted(all_presets())


def test_the_shipped_presets():
    assert {"roofline-v100", "roofline-910b", "roofline-kunpeng920"} <= set(PRESETS)
    for name, target in registry().items():
        assert target.default_preset in target.presets(), name


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads(preset):
    resolved = resolve(preset)
    target, path = all_presets()[preset]
    assert resolved.target is target
    assert resolved.preset == preset
    assert resolved.source == str(path)
    assert isinstance(resolved.spec, target.spec_class)
    assert target.headline(resolved.spec)
    d = resolved.to_dict()
    assert d["name"] == target.name and d["preset"] == preset
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert raw["name"] == preset  # the file's name key agrees with its file name


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_number_names_its_source(preset):
    """conventions.md: every hardware number in a preset carries a comment."""
    _, path = all_presets()[preset]
    missing = []
    in_spec = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("spec:"):
            in_spec = True
            continue
        if in_spec and re.match(r"^\s+[\w.]+:\s*[^\s#{]", line) and "#" not in line:
            missing.append(line.strip())
    assert missing == []


def test_preset_numbers_parsed_from_units():
    spec = resolve("roofline-910b").spec
    assert spec.dram_bw_bytes_per_s == pytest.approx(1.6e12, rel=REL)
    assert spec.kernel_launch_s == pytest.approx(2.9e-6, rel=REL)  # "2.9 us"
    assert spec.dram_bytes == 64 * 2**30
    assert resolve("roofline-kunpeng920").spec.dram_bw_bytes_per_s == pytest.approx(187.7e9,
                                                                                    rel=REL)


def test_hardware_file_errors(tmp_path):
    missing = tmp_path / "none.yaml"
    with pytest.raises(InputError, match="hardware file not found"):
        read_preset(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: [", encoding="utf-8")
    with pytest.raises(InputError, match="not valid YAML") as info:
        read_preset(bad)
    assert "\n" not in str(info.value)
    hw = dump_yaml(tmp_path / "hw.yaml", {"targett": "roofline", "spec": 3})
    with pytest.raises(InputError) as info:
        read_preset(hw)
    fields = {p.field: p.message for p in info.value.problems}
    assert fields.keys() == {"targett", "target", "spec"}
    assert "did you mean 'target'?" in fields["targett"]
    hw = dump_yaml(tmp_path / "hw2.yaml", {"target": "tpu", "spec": {}})
    with pytest.raises(InputError, match="target: unknown target 'tpu'"):
        read_preset(hw)


def test_resolve_errors_and_overrides(tmp_path):
    with pytest.raises(InputError, match="--target: unknown target 'roofline-v101'") as info:
        resolve("roofline-v101")
    assert "did you mean 'roofline-v100'?" in str(info.value)
    spec = resolve("roofline", {"dram_bw_bytes_per_s": "1.2 TB/s"}).spec
    assert spec.dram_bw_bytes_per_s == pytest.approx(1.2e12, rel=REL)
    with pytest.raises(InputError) as info:
        resolve("roofline", {"kernel_launch_s": "1 GHz"})
    p = info.value.problems[0]
    assert (p.source, p.field) == ("--set", "target.kernel_launch_s")
    # a bad value in the file itself is the file's problem, not --set's
    hw = dump_yaml(tmp_path / "hw.yaml", {"target": "roofline", "spec": {
        "peak_flops_per_s": {"fp16": 1e12}, "dram_bw_bytes_per_s": "lots"}})
    with pytest.raises(InputError) as info:
        resolve(str(hw), {"kernel_launch_s": 0})
    p = info.value.problems[0]
    assert (p.source, p.field) == (str(hw), "spec.dram_bw_bytes_per_s")


def test_a_builtin_found_by_name_without_the_registry_is_the_registry_s():
    """resolve finds a built-in target's presets in its package's presets folder without
    importing the other targets: that folder must be the target's presets_dir, and
    every preset must resolve to the target the registry gives it."""
    import importlib.util
    from pathlib import Path

    from hwsim.targets import BUILTIN, _builtin_of, all_presets, registry

    reg = registry()
    for name, ref in BUILTIN.items():
        spec = importlib.util.find_spec(ref.partition(":")[0])
        folder = Path(spec.submodule_search_locations[0]) / "presets"
        assert reg[name].presets_dir.resolve() == folder.resolve(), name
        assert _builtin_of(name)[0] is reg[name]
    for preset, (target, path) in all_presets().items():
        got = _builtin_of(preset)
        assert got is not None and got[0] is target and Path(got[2]).resolve() == path.resolve()
    assert _builtin_of("no-such-preset") is None


def test_a_hardware_file_rewritten_at_the_same_size_and_time_is_read_again(tmp_path):
    """A parse kept per path, modification time and size read a file rewritten within
    the file system's time-stamp granularity as it was; the parse is kept by text."""
    import os

    path = tmp_path / "hw.yaml"
    text = ("target: roofline\nname: mine\nspec:\n  peak_flops_per_s: {fp16: 1.0e+14}\n"
            "  dram_bw_bytes_per_s: 1.0e+12\n")
    path.write_text(text)
    stamp = os.stat(path).st_mtime_ns
    assert resolve(str(path)).spec.dram_bw_bytes_per_s == 1e12
    path.write_text(text.replace("1.0e+12", "2.0e+12"))  # the same size
    os.utime(path, ns=(stamp, stamp))
    assert resolve(str(path)).spec.dram_bw_bytes_per_s == 2e12
    assert read_preset(path)["spec"]["dram_bw_bytes_per_s"] == 2e12
