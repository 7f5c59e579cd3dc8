"""hwsim.yamlfile reads with libyaml's parser under PyYAML's Python composer: the same
data as the pure-Python loader on every YAML file the project ships, and the same
limits (aliases, nesting) on hostile input."""

from pathlib import Path

import pytest
import yaml

from hwsim import yamlfile
from hwsim.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
LIBYAML = getattr(yaml, "__with_libyaml__", False)


def _shipped_yaml() -> list[Path]:
    return sorted(p for folder in ("hwsim", "workloads", "sweeps")
                  for p in (ROOT / folder).rglob("*.y*ml"))


def _data(loader, text: str):
    got = loader(text)
    try:
        return got.get_single_data()
    finally:
        got.dispose()


@pytest.mark.skipif(not LIBYAML, reason="PyYAML built without libyaml")
def test_the_c_parser_is_used_where_libyaml_is_present():
    assert yamlfile._LOADER is yamlfile._CLoader


@pytest.mark.skipif(not LIBYAML, reason="PyYAML built without libyaml")
def test_both_loaders_give_the_same_data_on_every_shipped_file():
    files = _shipped_yaml()
    assert len(files) > 50  # presets, workloads, sweeps
    for path in files:
        text = path.read_text(encoding="utf-8")
        slow, fast = _data(yamlfile._Loader, text), _data(yamlfile._CLoader, text)
        # repr: the same types and the same floats to the last bit
        assert repr(fast) == repr(slow), path


@pytest.mark.skipif(not LIBYAML, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("text, needle", [
    ("a: " + "[" * 80 + "]" * 80 + "\n", "nested deeper than 64"),
    ("a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(1001)), "more than 1,000 aliases"),
    ("a: [1, 2\n", "not valid YAML"),
])
def test_the_limits_hold_with_the_c_parser(text, needle):
    with pytest.raises(InputError, match=needle):
        yamlfile._parse(text, "<test>", "YAML")
