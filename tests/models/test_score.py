"""Scoring a text: one forward pass, equal to feeding the characters one at a time and reading each
next-character distribution (the definition), and consistent with what generation samples from."""

from __future__ import annotations

import math

import pytest
import torch

from models.char_lstm import CharLSTM
from models.data import UnknownCharacters, Vocabulary
from models.score import score_text

TEXT = "the cat sat on the mat. the rat ran."


@pytest.fixture()
def model_and_vocab() -> tuple[CharLSTM, Vocabulary]:
    torch.manual_seed(0)
    vocab = Vocabulary.from_text(TEXT + "xyz")
    return CharLSTM(len(vocab), embedding_size=8, hidden_size=16, num_layers=2).eval(), vocab


def step_by_step(model: CharLSTM, vocab: Vocabulary, text: str) -> list[torch.Tensor]:
    """Log-distributions for positions 1..n-1, one character fed per forward call (float64)."""
    state = None
    out = []
    with torch.no_grad():
        for char in text[:-1]:
            logits, state = model(vocab.encode(char)[None, :], state)
            out.append(torch.log_softmax(logits[0, -1].double(), dim=-1))
    return out


def test_each_logprob_is_the_next_character_probability_fed_one_by_one(
    model_and_vocab: tuple[CharLSTM, Vocabulary],
) -> None:
    model, vocab = model_and_vocab
    scored = score_text(model, vocab, TEXT, top=3)
    reference = step_by_step(model, vocab, TEXT)
    assert scored.tokens == list(TEXT) and scored.scored == len(TEXT) - 1
    assert scored.token_logprobs[0] is None and scored.entropies[0] is None and scored.top_logprobs[0] is None
    for t, logp in enumerate(reference, start=1):
        expected = logp[vocab.chars.index(TEXT[t])].item()
        assert scored.token_logprobs[t] == pytest.approx(expected, abs=1e-5)
        entropy = -(logp.exp() * logp).sum().item()
        assert scored.entropies[t] == pytest.approx(entropy, abs=1e-5)
        top = scored.top_logprobs[t]
        assert top is not None and len(top) == 3
        best = logp.topk(3)
        assert list(top) == [vocab.chars[i] for i in best.indices.tolist()]
        assert list(top.values()) == pytest.approx(best.values.tolist(), abs=1e-5)
        assert max(top.values()) >= scored.token_logprobs[t]  # type: ignore[operator]
    logprobs = [lp for lp in scored.token_logprobs if lp is not None]
    assert scored.total_logprob == pytest.approx(sum(logprobs))
    assert scored.bits_per_character == pytest.approx(-sum(logprobs) / math.log(2) / (len(TEXT) - 1))


def test_an_untrained_model_is_near_uniform_and_a_one_character_text_has_nothing_to_score(
    model_and_vocab: tuple[CharLSTM, Vocabulary],
) -> None:
    model, vocab = model_and_vocab
    scored = score_text(model, vocab, TEXT)
    # A random small model predicts roughly uniformly: about log2(V) bits a character, entropy ~ ln V.
    assert abs(scored.bits_per_character - math.log2(len(vocab))) < 0.5  # type: ignore[operator]
    assert all(abs(e - math.log(len(vocab))) < 0.3 for e in scored.entropies[1:])  # type: ignore[operator]
    assert scored.top_logprobs == [None] * len(TEXT)
    single = score_text(model, vocab, "t")
    assert single.token_logprobs == [None] and single.bits_per_character is None and single.total_logprob == 0


def test_bad_input(model_and_vocab: tuple[CharLSTM, Vocabulary]) -> None:
    model, vocab = model_and_vocab
    with pytest.raises(UnknownCharacters) as caught:
        score_text(model, vocab, "the cat é!")
    assert caught.value.chars == ["!", "é"]
    with pytest.raises(ValueError, match="empty"):
        score_text(model, vocab, "")
    with pytest.raises(ValueError, match="top"):
        score_text(model, vocab, TEXT, top=6)
