"""Record a scores file from any model whose weights you have, with transformers.

Seeded top-k on the SpAtten target and score-derived schedules (``{method: spatten,
scores: FILE}``) need the attention probabilities of the workload's own model: a
GPT-2 workload ranks tokens by GPT-2's attention, not MiniLM's. This script runs a
causal or encoder model from a local folder (or the local Hugging Face cache; nothing
is downloaded) with eager attention on a prompt and writes every layer's and head's
probabilities, ``[layer, head, query, key]``, in the scores format that
:func:`hwsim.ir.scores.read_scores` checks (docs/pruning.md, "Scores files")::

    python -m hwsim.trace.record_scores gpt2 --weights ~/models/gpt2 \\
        --prompt "The cat sat on the mat." -o gpt2-scores.npz

``MODEL`` is the hwsim model name the workload uses (``model: gpt2``); it is written
into the file, and a workload of another model refuses the file. The file's token
count is the prompt's: give the workload that ``seq_len`` (the script prints it).
Needs torch and transformers (``pip install 'hwsim[trace]'``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..errors import InputError
from ..ir.scores import MAX_SCORES_ELEMENTS, Scores, write_scores


def record(model: str, weights: str, prompt: str, max_tokens: int = 512) -> Scores:
    """Run the model at ``weights`` on ``prompt``; its probabilities as :class:`Scores`."""
    if not prompt.strip():
        raise InputError("the prompt is empty", source="--prompt")
    try:
        import torch  # noqa: PLC0415
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415
    except ImportError as e:
        raise InputError(f"recording scores needs torch and transformers (pip install "
                         f"'hwsim[trace]'): {e}", source="record_scores") from None
    try:
        tok = AutoTokenizer.from_pretrained(weights, local_files_only=True)
        net = AutoModel.from_pretrained(weights, local_files_only=True,
                                        attn_implementation="eager", dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load a model and tokenizer from {weights!r} (a local "
                         f"folder or a model in the local Hugging Face cache): {e}",
                         source="--weights") from None
    net.eval()
    enc = tok(prompt, return_tensors="pt", truncation=True, max_length=max_tokens)
    with torch.no_grad():
        out = net(**enc, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise InputError(f"{weights}: the model returned no attention probabilities",
                         source="--weights")
    att = np.stack([a[0].float().numpy() for a in out.attentions])
    if att.size > MAX_SCORES_ELEMENTS:
        raise InputError(f"{att.size:,} probabilities {list(att.shape)}: a scores file "
                         f"holds at most {MAX_SCORES_ELEMENTS:,}; use a shorter prompt or "
                         f"--max-tokens", source="--prompt")
    tokens = tuple(tok.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return Scores(att, tokens, model, prompt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hwsim.trace.record_scores",
                                description="Record a model's attention probabilities as "
                                            "an hwsim scores file.")
    p.add_argument("model", help="the hwsim model name the workload uses (e.g. gpt2)")
    p.add_argument("--weights", required=True,
                   help="local folder (or cached Hugging Face id) of the weights")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="the text the model reads")
    src.add_argument("--text", metavar="FILE", help="a file holding the text")
    p.add_argument("--max-tokens", type=int, default=512, help="truncate the prompt here")
    p.add_argument("-o", "--output", required=True, help="scores file (.npz or .json)")
    args = p.parse_args(argv)
    try:
        prompt = args.prompt
        if args.text is not None:
            try:
                with open(args.text, encoding="utf-8") as f:
                    prompt = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"cannot read the text: {e}", source=args.text) from None
        weights = os.path.expanduser(args.weights)
        scores = record(args.model, weights, prompt, args.max_tokens)
        write_scores(args.output, scores)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    layers, heads, n, _ = scores.attention.shape
    print(f"{args.output}: {args.model}, {layers} layers x {heads} heads, {n} tokens "
          f"(give the workload seq_len: {n})")
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    sys.exit(main())
