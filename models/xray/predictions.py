"""What the model predicts at each position of a traced input: for text, how surprising each
character was and what else it expected; for palindromes, the digit it would answer at each step."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from models.data import Vocabulary

LN2 = math.log(2)


@dataclass(frozen=True)
class TextPredictions:
    """Per character; the first is null (no context predicted it). Bits: log base 2."""

    surprisal_bits: list[float | None]  # -log2 p(character | the ones before)
    entropy_bits: list[float | None]  # of the distribution that predicted it
    top: list[dict[str, float] | None]  # the `top` likeliest characters there, with their probabilities


def information_bits(logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (T, V), ids (T,) -> surprisal and entropy in bits, each (T,) float64, NaN at position 0
    (no context predicted it): the arrays themselves, for an answer that packs them."""
    logp = torch.log_softmax(logits[:-1].double(), dim=-1)  # (T - 1, V)
    nan = logp.new_full((1,), math.nan)
    surprisal = -logp.gather(1, ids[1:, None])[:, 0] / LN2
    entropy = -(logp.exp() * logp).sum(dim=-1) / LN2
    return torch.cat([nan, surprisal]), torch.cat([nan, entropy])


def top_characters(logits: torch.Tensor, vocab: Vocabulary, top: int) -> list[dict[str, float] | None]:
    """logits (T, V) -> per position t, the `top` likeliest characters after t - 1 (None at 0)."""
    tops: list[dict[str, float] | None] = [None] * logits.shape[0]
    if top:
        probabilities = torch.log_softmax(logits[:-1].double(), dim=-1).exp()  # (T - 1, V)
        values, indices = probabilities.topk(min(top, probabilities.shape[1]), dim=-1)
        chars = vocab.chars
        # dict(zip(...)) builds each row in C, not a comprehension step per entry: ~3x less time.
        tops[1:] = [
            dict(zip(map(chars.__getitem__, row_i), row_p, strict=True))
            for row_i, row_p in zip(indices.tolist(), values.tolist(), strict=True)
        ]
    return tops


def text_predictions(logits: torch.Tensor, ids: torch.Tensor, vocab: Vocabulary, top: int) -> TextPredictions:
    """logits (T, V) after each character, ids (T,): position t is scored by the logits at t - 1."""
    surprisal, entropy = information_bits(logits, ids)
    return TextPredictions(
        [None, *surprisal[1:].tolist()], [None, *entropy[1:].tolist()], top_characters(logits, vocab, top)
    )


def digit_predictions(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (T, 10) -> the predicted digit at each step (T,) and its 10 probabilities (T, 10)."""
    probabilities = logits.double().softmax(dim=-1)
    return probabilities.argmax(dim=-1), probabilities
