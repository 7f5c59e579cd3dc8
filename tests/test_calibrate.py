"""``hwsim calibrate``: the calibration hook, the command's table and JSON, ``--fit``.

The microbenchmark files are not shipped with hwsim (each is cited by its upstream
source, docs/calibration.md): tests read them from ``../shared/calibration`` beside the
checkout and skip when they are absent. The
hook, the fit and the error messages are tested on files written here.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import textwrap
from pathlib import Path

import pytest

from hwsim import calibrate as cal
from hwsim.cli.main import main
from hwsim.errors import InputError
from hwsim.targets import resolve

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT.parent / "shared" / "calibration" / "v100" / "v100_rrze_stream_bandwidth.csv"
needs_stream = pytest.mark.skipif(not STREAM.is_file(), reason="calibration data absent")


# ----------------------------------------------------------------------------- a toy target
FAKE = '''
from dataclasses import dataclass
from hwsim.targets import Target

@dataclass(frozen=True)
class Spec:
    a: float = 2.0          # the model: y = a * x + c0
    b: float = 5.0          # not used by the model
    c0: float = 0.5
    gains: dict = None

class FakeTarget(Target):
    name = "fakecal"

TARGET = FakeTarget()
'''

FAKE_CAL = '''
from hwsim.calibrate import CalibrationCase, read_csv

def _model(spec, x):
    return spec.a * x + spec.c0

def cases(spec):
    return [CalibrationCase("one", "fakecal", "", "a", {"x": 1.0}, 3.0, "s", _model(spec, 1.0),
                            "made up")]

def cases_from(spec, path, preset=""):
    out = []
    for r in read_csv(path, ["param"], ["x", "y"]):
        p = r["param"]
        modelled = _model(spec, r["x"]) if p != "gains.g" else spec.gains["g"] * r["x"] ** 2
        out.append(CalibrationCase(f"{p}-{r['x']:g}", "fakecal", preset, p, {"x": r["x"]},
                                   r["y"], "s", modelled, str(path)))
    return out
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A target package ``fakecal_pkg`` (target.py + calibration.py) on sys.path."""
    pkg = tmp_path / "fakecal_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .target import TARGET, Spec\n")
    (pkg / "target.py").write_text(FAKE)
    (pkg / "calibration.py").write_text(FAKE_CAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in [m for m in sys.modules if m.startswith("fakecal_pkg")]:
        monkeypatch.delitem(sys.modules, m)
    import fakecal_pkg  # noqa: PLC0415

    return fakecal_pkg


def test_hook_loads_the_calibration_module_of_the_target_package_and_fills_the_preset(fake):
    spec = fake.Spec()
    cases = fake.TARGET.calibration_cases(spec, "fake-preset")  # cases(spec): one parameter
    assert [(c.name, c.preset, c.modelled, c.measured) for c in cases] == [
        ("one", "fake-preset", 2.5, 3.0)]
    assert cases[0].error == pytest.approx(-1 / 6)
    assert fake.TARGET.calibration_files() == []  # no FILES: nothing to report absent


def test_hook_without_a_module_gives_no_cases_but_a_broken_module_is_an_error(fake, tmp_path):
    (tmp_path / "fakecal_pkg" / "calibration.py").unlink()
    assert fake.TARGET.calibration_cases(fake.Spec(), "p") == []
    (tmp_path / "fakecal_pkg" / "calibration.py").write_text("import no_such_module_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_xyz"):
        fake.TARGET.calibration_cases(fake.Spec(), "p")


def test_spatten_has_no_calibration_cases():
    r = resolve("spatten")
    assert r.target.calibration_cases(r.spec, r.preset) == []


# ----------------------------------------------------------------------------- the roofline cases
@needs_stream
def test_roofline_v100_dram_bandwidth_against_gpu_stream_at_full_occupancy():
    r = resolve("roofline-v100")
    cases = r.target.calibration_cases(r.spec, r.preset)
    got = {c.name: c for c in cases}
    # gpu-stream v100.txt at 100 % occupancy (1024 threads x 2 blocks per SM), GB/s
    measured = {"init": 897, "read": 867, "scale": 809, "triad": 788, "3pt": 804, "5pt": 801}
    assert sorted(got) == sorted(f"stream-{k}-b1024x2" for k in measured)
    for k, gbps in measured.items():
        c = got[f"stream-{k}-b1024x2"]
        assert (c.parameter, c.unit, c.preset, c.measured) == (
            "dram_bw_bytes_per_s", "B/s", "roofline-v100", gbps * 1e9)
        # streams x 2 GiB over (bytes / 900 GB/s + 2.9 us launch): just under 900 GB/s
        streams = {"init": 1, "read": 1, "scale": 2, "triad": 4, "3pt": 2, "5pt": 2}[k]
        counted = streams * (256 * 2**20 + 2) * 8
        moved = counted + (8 if k == "read" else 0)  # the reduction writes one fp64
        assert c.modelled == pytest.approx(counted / (moved / 900e9 + 2.9e-6), rel=1e-12)
        assert c.source == "RRZE-HPC/gpu-benches@1038c5d:gpu-stream/v100.txt"
    # the datasheet's 900 GB/s is above every kernel's plateau: 8.9 % MAPE
    assert cal.mape(cases) == pytest.approx(0.089, abs=0.001)


def test_roofline_gives_no_v100_cases_for_another_machine():
    for preset in ("roofline-910b", "roofline-kunpeng920"):
        r = resolve(preset)
        assert r.target.calibration_cases(r.spec, preset) == []


# ----------------------------------------------------------------------------- the command
@needs_stream
def test_command_prints_per_parameter_table_and_mape(capsys):
    assert main(["calibrate", "--preset", "roofline-v100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("roofline / roofline-v100\n")
    assert "  dram_bw_bytes_per_s: MAPE 8.9 % over 6 checks" in out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("stream-triad"))
    assert line.split()[-6:] == ["788", "GB/s", "899.7", "GB/s", "+14.2", "%"]
    assert "source: RRZE-HPC/gpu-benches@1038c5d:gpu-stream/v100.txt" in out
    assert "absent" not in out


@needs_stream
def test_command_json_schema(capsys, tmp_path):
    assert main(["calibrate", "-t", "roofline", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)  # the table went to stderr
    assert doc["schema"] == "hwsim.calibrate/1" and doc["absent"] == []
    assert [r["preset"] for r in doc["runs"]] == ["roofline-910b", "roofline-kunpeng920",
                                                  "roofline-v100"]
    run = doc["runs"][2]
    assert run["files"] == ["v100/v100_rrze_stream_bandwidth.csv"] and run["absent"] == []
    assert run["parameters"]["dram_bw_bytes_per_s"] == {
        "cases": 6, "mape": pytest.approx(0.089, abs=1e-3),
        "mape_checks": pytest.approx(0.089, abs=1e-3), "calibration_points": 0}
    for c in run["cases"]:
        assert set(c) == {"name", "target", "preset", "parameter", "x", "measured", "unit",
                          "modelled", "source", "note", "kind", "error"}
        assert c["error"] == pytest.approx((c["modelled"] - c["measured"]) / c["measured"])
        assert all(isinstance(v, float) for v in c["x"].values())


def test_command_says_which_files_are_absent(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(cal.ENV_DIR, str(tmp_path))  # an empty calibration folder
    assert main(["calibrate", "-t", "roofline", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "no calibration cases: roofline/roofline-910b, roofline/roofline-kunpeng920, " \
           "roofline/roofline-v100" in out
    assert f"absent calibration files (looked in {tmp_path}): " \
           "v100/v100_rrze_stream_bandwidth.csv" in out
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["absent"] == ["v100/v100_rrze_stream_bandwidth.csv"]
    assert all(r["cases"] == [] for r in doc["runs"])


def test_command_rejects_a_preset_of_another_target(capsys):
    assert main(["calibrate", "-t", "volta", "-p", "roofline-v100"]) == 2
    assert "--preset: preset 'roofline-v100' is for target 'roofline', not 'volta'" \
        in capsys.readouterr().err


# ----------------------------------------------------------------------------- --fit
def _stream_csv(path: Path, bw: float, overhead_s: float = 2.9e-6, kernels=None) -> Path:
    """gpu-stream rows generated by the roofline model itself at DRAM bandwidth ``bw``."""
    from hwsim.accelerators.roofline import calibration as rc  # noqa: PLC0415

    r = resolve("roofline-v100", {"dram_bw_bytes_per_s": bw, "kernel_launch_s": overhead_s})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["benchmark", "block_size", "blocks_per_SM", "occupancy_pct", "kernel",
                    "bandwidth_GBps"])
        for k in kernels or rc.STREAMS:
            w.writerow(["mine", 512, 4, 100.0, k,
                        repr(rc.stream_bandwidth_bytes_per_s(r.target, r.spec, k) / 1e9)])
    return path


def test_fit_recovers_the_bandwidth_the_data_was_generated_with(tmp_path):
    path = _stream_csv(tmp_path / "mine.csv", 612.5e9)
    r = resolve("roofline-v100")
    (fit,) = cal.refit(r.target, r.spec, r.preset, path)
    assert fit.parameter == "dram_bw_bytes_per_s" and fit.cases == 6 and not fit.message
    assert fit.before == 900e9
    assert fit.after == pytest.approx(612.5e9, rel=1e-12)
    assert fit.mape_after == pytest.approx(0.0, abs=1e-12) and fit.mape_before > 0.4


def test_fit_command_prints_overrides_that_reproduce_the_data(tmp_path, capsys):
    path = _stream_csv(tmp_path / "mine.csv", 1.3e12, overhead_s=0.0)
    assert main(["calibrate", "-t", "roofline", "--set", "target.kernel_launch_s=0",
                 "--fit", str(path), "--json", str(tmp_path / "fit.json")]) == 0
    out = capsys.readouterr().out
    assert "refit of roofline / roofline-v100 from" in out
    assert "  dram_bw_bytes_per_s: 9e+11 -> 1.3e+12 (6 case(s); MAPE 30.8 % -> 0.0 %)" in out
    assert "  --set target.dram_bw_bytes_per_s=1.3e+12" in out
    assert "  dram_bw_bytes_per_s: 1.3e+12  # refit from mine.csv by hwsim calibrate --fit" in out
    doc = json.loads((tmp_path / "fit.json").read_text())
    assert doc["fits"][0]["after"] == pytest.approx(1.3e12, rel=1e-12)
    # the printed override, applied, reproduces the user's data
    r = resolve("roofline-v100", {"dram_bw_bytes_per_s": 1.3e12, "kernel_launch_s": 0.0})
    assert cal.mape(r.target.calibration_module().cases_from(r.spec, path)) < 1e-12


def test_fit_says_which_parameters_cannot_be_refit(fake, tmp_path):
    path = tmp_path / "toy.csv"
    path.write_text(textwrap.dedent("""\
        param,x,y
        a,1,3.5
        a,2,6.5
        a,4,12.5
        b,1,1
        nope,1,1
        gains.g,2,12
        """))
    spec = fake.Spec(gains={"g": 1.0})
    fits = {f.parameter: f for f in cal.refit(fake.TARGET, spec, "toy", path)}
    assert fits["a"].after == pytest.approx(3.0, rel=1e-12)  # y = 3x + 0.5 exactly
    assert fits["gains.g"].after == pytest.approx(3.0, rel=1e-12)  # a mapping entry: 3 * 2^2
    assert fits["b"].after is None and "does not depend on it" in fits["b"].message
    assert fits["nope"].after is None and fits["nope"].message == "not a field of the fakecal spec"
    text = cal.format_fits("fakecal", "toy", str(path), list(fits.values()))
    assert "--set target.a=3 --set target.gains.g=3" in text
    assert "  gains:\n    g: 3  # refit from toy.csv" in text


FILES_ONLY = '''
from hwsim.calibrate import CalibrationCase, data_path, read_csv

FILES = ("toy/other.csv", "toy/chase.csv")

def cases(spec, preset):
    path = data_path("toy/chase.csv")
    if path is None:
        return []
    return [CalibrationCase(f"c{r['x']:g}", "fakecal", preset, "a", {"x": r["x"]}, r["y"], "s",
                            spec.a * r["x"] + spec.c0, "toy")
            for r in read_csv(path, [], ["x", "y"])]
'''


def test_fit_reads_the_users_file_as_a_shipped_one_when_the_module_has_no_reader(
        fake, tmp_path, monkeypatch):
    import tempfile  # noqa: PLC0415

    (tmp_path / "fakecal_pkg" / "calibration.py").write_text(FILES_ONLY)
    (tmp_path / "t").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    path = tmp_path / "mine.csv"
    path.write_text("x,y\n1,4.5\n3,12.5\n")  # y = 4 x + 0.5
    (fit,) = cal.refit(fake.TARGET, fake.Spec(), "toy", path)
    assert (fit.parameter, fit.cases) == ("a", 2) and fit.after == pytest.approx(4.0, rel=1e-12)
    assert not list((tmp_path / "t").iterdir())  # the stand-in calibration folder is gone
    path.write_text("u,v\n1,2\n")
    with pytest.raises(InputError, match="no reader of this target takes this file's columns "
                                         r"\(u, v\); its files: toy/other.csv, toy/chase.csv"):
        cal.refit(fake.TARGET, fake.Spec(), "toy", path)


def test_fit_needs_a_machine_and_a_reader(capsys, tmp_path):
    assert main(["calibrate", "--fit", "x.csv"]) == 2
    assert "--fit: name the machine to refit: --target or --preset" in capsys.readouterr().err
    assert main(["calibrate", "-t", "spatten", "--fit", str(tmp_path / "x.csv")]) == 2
    assert "target 'spatten' reads no microbenchmark files of a user" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad CSVs
@pytest.mark.parametrize("body, expected", [
    ("kernel,block_size,blocks_per_SM,occupancy_pct\nread,1,1,1\n",
     "{p}: bandwidth_GBps: missing column (header has: kernel, block_size, blocks_per_SM, "
     "occupancy_pct)"),
    ("kernel,block_size,blocks_per_SM,occupancy_pct,bandwidth_GBps\nread,1,1,100,fast\n",
     "{p}: bandwidth_GBps: line 2: not a number: 'fast'"),
    ("kernel,block_size,blocks_per_SM,occupancy_pct,bandwidth_GBps\nread,1,1,100,nan\n",
     "{p}: bandwidth_GBps: line 2: not a finite number: 'nan'"),
    ("kernel,block_size,blocks_per_SM,occupancy_pct,bandwidth_GBps\ncopy,1,1,100,5\n",
     "{p}: kernel: line 2: unknown kernel 'copy' (gpu-stream's: init, read, scale, triad, "
     "3pt, 5pt)"),
    ("kernel,block_size,blocks_per_SM,occupancy_pct,bandwidth_GBps\n",
     "{p}: no data rows"),
    ("size,latency\n1,2\n",
     "{p}: kernel: not a gpu-stream file: the roofline reads one with columns kernel, "
     "block_size, blocks_per_SM, occupancy_pct, bandwidth_GBps"),
])
def test_bad_csv_is_one_line_naming_file_and_column(tmp_path, capsys, body, expected):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    assert main(["calibrate", "-p", "roofline-v100", "--fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"hwsim: error: {expected.format(p=path)}\n"


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InputError, match=r"nope.csv: calibration file not found$"):
        cal.read_csv(tmp_path / "nope.csv", ["a"])
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00a,b\n")
    with pytest.raises(InputError, match="bin.csv: not a UTF-8 text CSV file"):
        cal.read_csv(tmp_path / "bin.csv", ["a"])


def test_calibration_points_are_reported_apart_from_checks():
    def case(name, kind, modelled):
        return cal.CalibrationCase(name, "t", "p", "lat", {"n": 1.0}, 100.0, "cycles", modelled,
                                   "src", kind=kind)

    cases = [case("a", "check", 110.0), case("b", "check", 80.0),
             case("c", "calibration", 101.0)]
    assert cal.summary(cases) == "MAPE 15.0 % over 2 checks; 1.0 % over 1 calibration point"
    text = cal.format_runs([cal.PresetRun("t", "p", cases, [], [])])
    assert "  lat: MAPE 15.0 % over 2 checks; 1.0 % over 1 calibration point" in text
    assert text.splitlines()[-2].split()[-1] == "calibration"  # case c is marked
    with pytest.raises(ValueError, match="kind must be 'check' or 'calibration'"):
        case("d", "measured", 1.0)


@needs_stream
def test_validate_shows_the_microbenchmarks_per_target_apart(capsys):
    assert main(["validate", "--target", "roofline"]) == 0
    out = capsys.readouterr().out
    assert ("  roofline   measured: none; published claims: none; microbenchmarks of 1 "
            "parameter: MAPE 8.9% over 6 checks (hwsim calibrate; parts, not evidence)") in out
    assert main(["validate", "--target", "roofline", "--no-microbenchmarks"]) == 0
    assert "microbenchmarks" not in capsys.readouterr().out


def test_values_print_with_si_prefixes():
    assert cal.fmt_value(812e9, "B/s") == "812 GB/s"
    assert cal.fmt_value(42.08e-6, "s") == "42.08 us"
    assert cal.fmt_value(434.0, "cycles") == "434 cycles"
    assert cal.fmt_value(math.nan, "s") == "n/a"
