"""hwsim's own arithmetic, checked as tests (issue 11): hand counts of FLOPs, the
roofline at its own peaks, formulas that restate the model's constants. These
were validation cases; they check the simulator against itself, so they are
tests, not evidence, and `hwsim validate` no longer lists them."""

import os

import pytest

from hwsim.validate import load_cases
from hwsim.validate.runner import _repo_path, measure

CASES_DIR = os.path.join(os.path.dirname(__file__), "identity_cases")
CASES = load_cases(CASES_DIR)


def test_every_identity_case_says_so():
    assert CASES and all(c.kind == "identity" for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_identity_case(case):
    missing = [p for p in case.requires if not os.path.exists(_repo_path(p))]
    if missing:
        pytest.skip(f"data {missing[0]} absent")
    value = measure(case)
    if case.minimum is not None or case.maximum is not None:
        assert case.within(value), f"{case.name}: {value:.6g} outside the bound"
        return
    assert value == pytest.approx(case.expected, rel=case.tolerance, abs=0), (
        f"{case.name}: expected {case.expected:.6g}, simulated {value:.6g} ({case.source})")
