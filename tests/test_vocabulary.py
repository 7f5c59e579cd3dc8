"""One vocabulary across targets (issue 17, point 4).

The same quantity has the same spec field name on every target, so one sweep axis
(``target.dram_bw_bytes_per_s``) spans targets; an old name fails with one line that
names the new one; ``hwsim targets --fields T`` lists a target's fields with units,
values and sources.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import dump_yaml, run_hwsim

import hwsim
from hwsim.errors import InputError
from hwsim.spec import RENAMED
from hwsim.targets import field_rows, preset_sources, registry, resolve
from hwsim.units import parse_quantity

TARGETS = sorted(registry())
SPECS = {name: {f.name for f in dataclasses.fields(t.spec_class)}
         for name, t in registry().items()}

# a quantity -> its one name; every built-in target that states the quantity as a
# settable field uses this name (None: the target derives it from other fields)
VOCABULARY = {
    "DRAM bandwidth": ("dram_bw_bytes_per_s",
                       {"roofline", "ascend", "volta"}),  # armv8, spatten: from channels
    "DRAM capacity": ("dram_bytes", {"roofline", "ascend", "volta", "armv8", "spatten"}),
    "DRAM energy per byte": ("dram_pj_per_byte",
                             {"roofline", "ascend", "volta", "armv8", "spatten"}),
    "clock": ("clock_hz", {"ascend", "volta", "armv8", "spatten"}),
    "power limit": ("power_limit_w", {"ascend", "volta", "armv8"}),
    "static power": ("static_power_w", {"roofline", "ascend", "volta", "spatten"}),
    "launch cost": ("kernel_launch_s", {"roofline", "ascend", "volta"}),
    "L1 size": ("l1_bytes", {"ascend", "volta", "armv8"}),
    "L2 size": ("l2_bytes", {"ascend", "volta", "armv8"}),
    "link bandwidth": ("link_bw_bytes_per_s", {"roofline", "ascend", "volta"}),
}

# a memory-bound kernel: a GEMV reading 32 MiB of fp16 weights
GEMV = {"name": "gemv", "dtype": "fp16", "ops": [{"kind": "matmul", "m": 1, "n": 4096,
                                                  "k": 4096}]}


@pytest.mark.parametrize("quantity", sorted(VOCABULARY))
def test_one_quantity_has_one_name_on_every_target(quantity):
    name, having = VOCABULARY[quantity]
    assert {t for t in TARGETS if name in SPECS[t]} == having


def test_no_target_keeps_an_old_name_and_every_new_name_exists():
    for target, fields in SPECS.items():
        assert not set(RENAMED) & fields, target
    every = set().union(*SPECS.values())
    assert {new for new, _ in RENAMED.values()} <= every
    # no hbm_* field is left: the device DRAM is dram_* whatever its technology
    assert not [f for f in every if f.startswith("hbm_")]
    # the capacity every simulation checks is the same field wherever it is checked
    assert {t.capacity_field for t in registry().values()} <= {"dram_bytes", ""}


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_an_old_name_is_refused_with_the_new_one(old):
    new, _ = RENAMED[old]
    target = next(t for t in TARGETS if new in SPECS[t])
    value = getattr(resolve(target).spec, new)
    with pytest.raises(InputError) as e:
        resolve(target, {old: value})
    (problem,) = e.value.problems
    assert (problem.source, problem.field) == ("--set", f"target.{old}")
    assert problem.message.startswith(f"field `{old}` was renamed `{new}`")


def test_an_old_name_in_a_hardware_file_names_file_field_and_new_name(tmp_path):
    path = dump_yaml(tmp_path / "v100.yaml", {
        "target": "roofline", "name": "mine",
        "spec": {"peak_flops_per_s": {"fp16": 1e14}, "dram_bw_bytes_per_s": 9e11,
                 "op_overhead_s": 4e-6}})
    with pytest.raises(InputError) as e:
        resolve(str(path))
    assert str(e.value) == (f"{path}: spec.op_overhead_s: field `op_overhead_s` was "
                            "renamed `kernel_launch_s`")


def test_an_old_name_on_the_command_line_is_one_line_exit_2(tmp_path):
    wl = dump_yaml(tmp_path / "gemv.yaml", GEMV)
    p = run_hwsim("simulate", str(wl), "-t", "volta", "--set", "target.hbm_bw_bytes_per_s=1e12")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == ("hwsim: error: --set: target.hbm_bw_bytes_per_s: field "
                           "`hbm_bw_bytes_per_s` was renamed `dram_bw_bytes_per_s`")


def test_an_old_name_as_a_sweep_axis_is_refused_before_any_point_runs():
    spec = {"workload": GEMV, "target": "ascend",
            "axes": {"target.hbm_bw_bytes_per_s": [4e11, 8e11]}}
    with pytest.raises(InputError, match="was renamed `dram_bw_bytes_per_s`"):
        hwsim.sweep(spec, workers=1, progress=False)


def test_one_bandwidth_axis_spans_two_targets_and_reaches_each(tmp_path):
    """The same axis, on roofline and on ascend: each point's machine has the value
    as its DRAM bandwidth (the ceiling its report states), and a memory-bound
    kernel gets faster with it on both."""
    values = [4e11, 8e11]
    wl = dump_yaml(tmp_path / "gemv.yaml", GEMV)
    df = hwsim.sweep({"workload": GEMV, "fidelity": "analytical",
                      "axes": {"target": ["roofline", "ascend"],
                               "target.dram_bw_bytes_per_s": values}},
                     workers=1, progress=False)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert sorted(set(df["target"])) == ["ascend", "roofline"]
    for name, rows in df.groupby("target"):
        latency = dict(zip(rows["target.dram_bw_bytes_per_s"], rows["latency_s"]))
        assert latency[8e11] < 0.75 * latency[4e11], name  # memory-bound: near halved
        for bw in values:
            r = hwsim.simulate(wl, name, fidelity="analytical",
                               sets={"target.dram_bw_bytes_per_s": bw})
            assert r.target.target.peak_dram_bw_bytes_per_s(r.target.spec) == bw
            assert r.to_dict()["target"]["spec"]["dram_bw_bytes_per_s"] == bw
            assert r.totals["latency_s"] == latency[bw]


def test_spatten_dram_energy_per_byte_is_the_per_bit_figure_times_eight():
    spec = resolve("spatten").spec
    # the per-bit movement and I/O of HBM2 (O'Connor et al.) x 8; activations apart
    assert spec.dram_pj_per_byte == pytest.approx(8 * (2.24 + 0.3))


def test_transfers_per_second_take_a_unit():
    assert parse_quantity("2933 MT/s", "dram_transfers_per_s") == 2.933e9
    assert resolve("armv8", {"dram_transfers_per_s": "3200 MT/s"}).spec \
        .dram_transfers_per_s == 3.2e9
    with pytest.raises(ValueError, match="does not fit"):
        parse_quantity("2933 MHz", "dram_transfers_per_s")


# ---------------------------------------------------------------- targets --fields
def test_fields_lists_every_field_with_unit_value_help_and_source():
    r = resolve("volta")
    rows = {row["field"]: row for row in field_rows(r)}
    assert set(rows) == SPECS["volta"]
    bw = rows["dram_bw_bytes_per_s"]
    assert (bw["unit"], bw["value"]) == ("B/s", "750 GB/s")
    assert bw["help"] == "achievable HBM2 bandwidth, all SMs"
    assert "Jia" in bw["source"]  # the preset line's comment
    assert rows["dram_bytes"]["value"] == "32 GiB"
    assert rows["clock_hz"]["value"] == "1.53 GHz"
    assert rows["kernel_launch_s"]["unit"] == "s"
    # a field the preset leaves at the spec's default says so, with the default's value
    tx2 = {row["field"]: row for row in field_rows(resolve("armv8-thunderx2"))}
    assert tx2["numa_nodes"]["source"] == "the ARMv8Spec default (not set by the preset)"
    assert tx2["numa_nodes"]["value"] == "1"
    pcie = {row["field"]: row for row in field_rows(resolve("volta-v100-pcie"))}
    assert pcie["dram_bytes"]["value"] == "16 GiB"
    # a mapping's entries each carry their own source
    assert rows["cuda_flops_per_cycle_per_sm"]["source"].startswith("fp32: ")


def test_every_preset_field_states_a_source():
    for t in registry().values():
        for preset, path in t.presets().items():
            _, comments = preset_sources(path)
            spec = resolve(preset)
            missing = [row["field"] for row in field_rows(spec)
                       if row["source"] == "(the preset gives no source)"]
            assert not missing, (preset, missing)
            assert comments


def test_cli_targets_fields():
    p = run_hwsim("targets", "--fields", "armv8-kunpeng920")
    assert p.returncode == 0, p.stderr
    assert "values of preset armv8-kunpeng920" in p.stdout
    assert "dram_transfers_per_s [T/s] = 2.933 GT/s" in p.stdout
    assert "power_limit_w [W] = 180 W" in p.stdout
    p = run_hwsim("targets", "--fields", "bogus")
    assert p.returncode == 2
    assert p.stderr.startswith("hwsim: error: --fields: unknown target 'bogus'")
    assert len(p.stderr.strip().splitlines()) == 1


def test_fields_of_a_users_hardware_file_show_its_sources_key_and_comments(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("# my lab's V100\n"
                    "target: roofline\n"
                    "name: mine\n"
                    "sources: {dram_bw_bytes_per_s: our STREAM run of 2024-05-01}\n"
                    "spec:\n"
                    "  peak_flops_per_s: {fp16: 1.0e+14}  # datasheet\n"
                    "  dram_bw_bytes_per_s: 8.1e+11  # triad, 4 GiB arrays\n", encoding="utf-8")
    rows = {row["field"]: row for row in field_rows(resolve(str(path)))}
    assert rows["dram_bw_bytes_per_s"]["source"] == \
        "our STREAM run of 2024-05-01; triad, 4 GiB arrays"
    assert rows["dram_bw_bytes_per_s"]["value"] == "810 GB/s"
    assert rows["peak_flops_per_s"]["source"] == "datasheet"
    assert rows["kernel_launch_s"]["source"] == \
        "the RooflineSpec default (not set by the preset)"
    assert preset_sources(path)[0] == ["my lab's V100"]
