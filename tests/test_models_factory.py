"""Your own model without traps: factories from the project folder, sizes that are
honoured or refused, templates of factories, and PyTorch's attentions (nn.MultiheadAttention,
F.scaled_dot_product_attention with masks, hand-written chains) as attention ops."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hwsim.ir import load  # noqa: E402
from hwsim.trace import trace, trace_template  # noqa: E402
from hwsim.trace.template import compare  # noqa: E402

pytestmark = pytest.mark.trace

ROOT = Path(__file__).resolve().parents[1]

# A user's project: mypkg/models.py, importable only from the project folder.
MODELS = textwrap.dedent('''
    import math

    import torch
    import torch.nn.functional as F
    from torch import nn

    DIM, HEADS = 64, 4


    class Block(nn.Module):
        """Self-attention through nn.MultiheadAttention, a GELU MLP."""

        def __init__(self, need_weights=True, mask=None, use_weights=False):
            super().__init__()
            self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
            self.fc = nn.Linear(DIM, DIM)
            self.need_weights, self.mask, self.use_weights = need_weights, mask, use_weights

        def forward(self, x):
            s = x.shape[1]
            mask, causal = None, False
            if self.mask == "bool":  # True hides (nn.MultiheadAttention's convention)
                mask = torch.triu(torch.ones(s, s, dtype=torch.bool, device=x.device), 1)
            elif self.mask == "additive":
                mask = nn.Transformer.generate_square_subsequent_mask(s, device=x.device,
                                                                      dtype=x.dtype)
            elif self.mask == "is_causal":
                mask = nn.Transformer.generate_square_subsequent_mask(s, device=x.device,
                                                                      dtype=x.dtype)
                causal = True
            out, weights = self.attn(x, x, x, attn_mask=mask, need_weights=self.need_weights,
                                     is_causal=causal)
            if self.use_weights:  # the probabilities are used: they must exist
                out = out + weights.sum(-1, keepdim=True)
            return x + self.fc(F.gelu(out))


    class SDPA(nn.Module):
        """F.scaled_dot_product_attention with the masks people write."""

        def __init__(self, kind, window=4):
            super().__init__()
            self.qkv = nn.Linear(DIM, 3 * DIM)
            self.kind, self.window = kind, window
            self.register_buffer("tril", torch.tril(torch.ones(256, 256, dtype=torch.bool)))
            self.register_buffer("noise", torch.rand(256, 256) > 0.5)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).view(b, s, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            ones = torch.ones(s, s, dtype=torch.bool, device=x.device)
            mask = {"none": None, "causal": None,
                    "bool": ones.tril(),
                    "additive": nn.Transformer.generate_square_subsequent_mask(
                        s, device=x.device, dtype=x.dtype),
                    "zeros": torch.zeros(b, 1, s, s, dtype=x.dtype, device=x.device),
                    "window": ones.tril().triu(1 - self.window),
                    "buffer": self.tril[:s, :s],
                    "unknown": self.noise[:s, :s]}[self.kind]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 is_causal=self.kind == "causal")
            return out.transpose(1, 2).reshape(b, s, DIM)


    class Eager(nn.Module):
        """nanoGPT's attention: a causal buffer, masked_fill(bias == 0, -inf), softmax."""

        def __init__(self, n=128):
            super().__init__()
            self.qkv = nn.Linear(DIM, 3 * DIM)
            self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).split(DIM, dim=2)
            q, k, v = (t.view(b, s, HEADS, DIM // HEADS).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(DIM // HEADS)
            att = att.masked_fill(self.bias[:, :, :s, :s] == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ v


    def sized(cls, *args):
        def factory(batch=1, seq_len=16):
            return cls(*args), (torch.zeros(batch, seq_len, DIM),)
        return factory


    def fixed():
        """No size parameters: the example inputs fix the shapes."""
        return SDPA("causal"), (torch.zeros(2, 16, DIM),)


    mha = sized(Block)
    mha_fast = sized(Block, False)
    mha_bool = sized(Block, False, "bool")
    mha_additive = sized(Block, True, "additive")
    mha_is_causal = sized(Block, False, "is_causal")
    mha_weights_used = sized(Block, True, None, True)
    sdpa = {kind: sized(SDPA, kind) for kind in ("none", "causal", "bool", "additive", "zeros",
                                                 "window", "buffer", "unknown")}
    sdpa_none, sdpa_causal, sdpa_bool = sdpa["none"], sdpa["causal"], sdpa["bool"]
    sdpa_additive, sdpa_zeros, sdpa_window = sdpa["additive"], sdpa["zeros"], sdpa["window"]
    sdpa_buffer, sdpa_unknown = sdpa["buffer"], sdpa["unknown"]
    eager = sized(Eager)


    def on_meta(batch=1, seq_len=16):
        """The big-model way: build on the meta device, return inputs of the size asked."""
        with torch.device("meta"):
            model = nn.Sequential(SDPA("causal"), nn.Linear(DIM, DIM), SDPA("window"))
        return model, {"input": torch.zeros(batch, seq_len, DIM)}
''')

RUNNER = "import sys\nfrom hwsim.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder holding the package mypkg (not on sys.path)."""
    root = tmp_path_factory.mktemp("project")
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "models.py").write_text(MODELS)
    return root


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project)
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        monkeypatch.delitem(sys.modules, name)
    return project


def hwsim_cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """``hwsim ARGS`` run as the console script runs: from a script whose folder is
    sys.path[0] (not the working directory), in the project folder."""
    bin_dir = project.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "hwsim_entry.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, str(bin_dir / "hwsim_entry.py"), *args],
                          capture_output=True, text=True, cwd=project, env=env, timeout=300)


def attention(graph) -> dict:
    (op,) = [op for op in graph.ops if op.kind == "attention"]
    return op.attrs


# ---------------------------------------------------------------- the factory contract
def test_hwsim_trace_finds_a_factory_in_the_working_directory(project):
    res = hwsim_cli(project, "trace", "mypkg.models:mha_fast", "--seq", "48", "--batch", "3",
                    "-o", "mine.json.gz")
    assert res.returncode == 0, res.stderr
    g = load(project / "mine.json.gz")
    a = attention(g)
    assert (a["batch"], a["heads"], a["q_len"], a["kv_len"]) == (3, 4, 48, 48)  # --seq honoured
    assert g.header["seq_len"] == 48 and g.header["batch"] == 3


def test_sizes_a_factory_cannot_take_are_refused_in_one_line(project):
    res = hwsim_cli(project, "trace", "mypkg.models:fixed", "--seq", "64")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "takes no seq_len keyword parameter, so --seq would be ignored" in res.stderr
    ok = hwsim_cli(project, "trace", "mypkg.models:fixed", "-o", "fixed.json.gz")
    assert ok.returncode == 0, ok.stderr
    assert attention(load(project / "fixed.json.gz"))["q_len"] == 16  # its own size
    res = hwsim_cli(project, "trace", "mypkg.models:fixed", "--template")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "--template needs the factory to build any size" in res.stderr


def test_template_of_a_factory_works_or_says_why(in_project, tmp_path):
    tmpl = trace_template("mypkg.models:on_meta", "prefill")
    for size in ({"batch": 1, "seq_len": 100}, {"batch": 5, "seq_len": 7}):
        fresh = trace("mypkg.models:on_meta", **size)
        assert compare(tmpl.instantiate(**size), fresh) == []
    assert [a["q_len"] for a in (op.attrs for op in tmpl.instantiate(batch=2, seq_len=300).ops
                                 if op.kind == "attention")] == [300, 300]
    # nn.MultiheadAttention(batch_first=True) copies its transposed input at batch > 1
    # only: no one graph fits every batch, and the error says where it changes
    from hwsim.errors import InputError

    with pytest.raises(InputError) as err:
        trace_template("mypkg.models:mha_fast", "prefill")
    message = str(err.value)
    assert "\n" not in message and "not a multilinear function of the sizes" in message
    assert "ops at batch=1, seq_len=4, kv_len=0" in message and "elementwise in attn" in message


# ---------------------------------------------------------------- attentions
@pytest.mark.parametrize("factory,expected", [
    ("mha", {"causal": False}),
    ("mha_fast", {"causal": False}),
    ("mha_bool", {"causal": True}),
    ("mha_additive", {"causal": True}),
    ("mha_is_causal", {"causal": True}),
    ("sdpa_none", {"causal": False}),
    ("sdpa_causal", {"causal": True}),
    ("sdpa_bool", {"causal": True}),
    ("sdpa_additive", {"causal": True}),
    ("sdpa_zeros", {"causal": False}),
    ("sdpa_window", {"causal": True, "window": 4}),
    ("sdpa_buffer", {"causal": True}),
    ("sdpa_unknown", {"causal": False, "masked": True}),
    ("eager", {"causal": True}),
])
def test_pytorch_attentions_become_attention_ops(in_project, factory, expected):
    g = trace(f"mypkg.models:{factory}", batch=2, seq_len=24)
    assert g.verify() == []
    kinds = Counter(op.kind for op in g.ops)
    assert kinds["attention"] == 1 and "softmax" not in kinds and "reduce" not in kinds
    a = attention(g)
    assert (a["batch"], a["heads"], a["kv_heads"], a["head_dim"], a["q_len"], a["kv_len"]) == (
        2, 4, 4, 16, 24, 24)
    for key in ("causal", "window", "masked"):
        assert a.get(key, False if key != "window" else None) == expected.get(
            key, False if key != "window" else None), (factory, a)


def test_attention_weights_that_are_used_stay_unfused(in_project):
    """need_weights=True and the weights read: the probabilities are materialized, as
    PyTorch runs it (Q·Kᵀ, softmax, P·V, the head average)."""
    g = trace("mypkg.models:mha_weights_used", batch=2, seq_len=24)
    kinds = Counter(op.kind for op in g.ops)
    assert "attention" not in kinds and kinds["softmax"] == 1
    softmax = next(op for op in g.ops if op.kind == "softmax")
    assert (softmax.attrs["rows"], softmax.attrs["cols"]) == (2 * 4 * 24, 24)
