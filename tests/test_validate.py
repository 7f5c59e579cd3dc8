"""The validation set runs in the tests: every reference case within its tolerance."""

import os

import pytest

from hwsim.validate import format_results, load_cases, run_cases
from hwsim.validate.runner import _repo_path, measure

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reference_case(case):
    missing = [p for p in case.requires if not os.path.exists(_repo_path(p))]
    if missing:
        pytest.skip(f"data {missing[0]} absent")
    value = measure(case)
    if case.minimum is not None or case.maximum is not None:
        assert case.within(value), (f"{case.name}: simulated {value:.6g} outside "
                                    f"[{case.minimum}, {case.maximum}] ({case.source})")
        return
    assert value == pytest.approx(case.expected, rel=case.tolerance, abs=0), (
        f"{case.name}: expected {case.expected:.6g}, simulated {value:.6g} ({case.source})")


def test_every_case_names_its_source_with_a_confidence_mark_or_formula():
    for case in CASES:
        assert case.source.strip(), case.name
        assert any(m in case.source for m in ("(V)", "(D)", "(S)", "(M)", "formula", "count")), (
            f"{case.name}: source should carry a confidence mark: {case.source}")


def test_a_case_outside_its_tolerance_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- name: deliberately wrong\n"
        "  source: test (M)\n"
        "  target: roofline-v100\n"
        "  workload: {ops: [{kind: matmul, m: 8192, n: 8192, k: 8192}], dtype: fp16}\n"
        "  metric: flops_per_s\n"
        "  expected: 100e12\n"
        "  tolerance: 0.05\n")
    (r,) = run_cases(path=str(bad))
    assert not r.ok
    assert r.error == pytest.approx(0.2495, abs=1e-3)
    assert "NO" in format_results([r])


def test_a_bound_case_checks_the_finding_not_a_magnitude(tmp_path):
    case = tmp_path / "bound.yaml"
    text = ("- name: a large GEMM is compute-bound on the roofline\n"
            "  source: formula\n"
            "  target: roofline-v100\n"
            "  workload: {ops: [{kind: matmul, m: 4096, n: 4096, k: 4096}], dtype: fp16}\n"
            "  metric: flops_per_s\n"
            "  expected: 125e12\n"
            "  tolerance: 0\n"
            "  minimum: {lo}\n")
    case.write_text(text.replace("{lo}", "100e12"))
    (r,) = run_cases(path=str(case))
    assert r.ok and r.simulated < 125e12  # off the expected value, yet within the bound
    assert ">=1e+14" in format_results([r])
    case.write_text(text.replace("{lo}", "130e12"))
    (r,) = run_cases(path=str(case))
    assert not r.ok
