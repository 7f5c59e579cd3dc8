"""What hwsim ships cites sources a user can look up (issue 17, point 3).

A preset, a validation case, a docstring or a page of the docs names the primary
source of a number (a paper and its table, a datasheet, a measurement set), never
the project's internal notes (REFERENCES.md) nor a path outside the repository
(``../shared``): an installed hwsim has neither.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

SHIPPED = ("hwsim", "docs", "workloads", "README.md")
TEXT = (".py", ".md", ".yaml", ".yml", ".txt", ".json", ".toml", ".cfg", ".ini")

# Optional data that hwsim does not ship and a development checkout finds beside it:
# each reader works without it (calibration points and validation cases are skipped
# saying so, a released-trace workload stops with one line naming the file, where to
# get it and --set trace=PATH; tests/test_shipped.py holds them to that). Any other
# mention of ../shared in a shipped file is a failure.
OPTIONAL_DATA = {
    "hwsim/calibrate.py": "the calibration folder's default, $HWSIM_CALIBRATION_DIR first",
    "hwsim/validate/cases/spatten.yaml": "a case's requires: on SpAtten's released trace",
    "docs/calibration.md": "where the calibration folder is looked for",
    "docs/targets/spatten.md": "where the released traces are looked for",
    **{f"workloads/spatten-gpt2-{m}-trace-{k}.yaml": "a released SpAtten trace"
       for m in ("small", "medium") for k in ("dense", "pruned")},
}


def mentions(where: str, needle: str) -> list[str]:
    root = ROOT / where
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT
        and "__pycache__" not in p.parts)
    assert files, where
    out = []
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if needle in line:
                out.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    return out


@pytest.mark.parametrize("where", SHIPPED)
@pytest.mark.parametrize("needle", ("REFERENCES.md", "../shared"))
def test_no_shipped_file_cites_what_users_do_not_have(needle, where):
    found = [m for m in mentions(where, needle)
             if needle != "../shared" or m.split(":")[0] not in OPTIONAL_DATA]
    assert not found, "\n".join(found)


def test_the_optional_data_mentions_are_still_there():
    """The allowance names files that do mention the folder (a stale entry would hide a
    new mention behind an old name)."""
    for path in OPTIONAL_DATA:
        assert mentions(path, "../shared"), path


def test_the_check_finds_a_mention():
    """The scan reads the files it should: this test file names both strings."""
    assert mentions("tests/test_shipped_sources.py", "REFERENCES.md")
    assert mentions("tests/test_shipped_sources.py", "../shared")
