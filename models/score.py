"""Scoring a text with a character model: how probable each character was, given the ones before it.

One forward pass over the text (`nn.LSTM` runs the whole sequence fused), so scoring 10,000 characters
costs about what one step of generation costs per character divided by the sequence's parallelism.
The first character has no context and so no log-probability (lm-evaluation-harness and the OpenAI
`echo` convention give it null); `bits_per_character` averages over the others, the course's measure.
Log-probabilities and entropies are natural logarithms, as vLLM and OpenAI give them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from models.data import Vocabulary
from models.decode.limits import MAX_LOGPROBS


@dataclass(frozen=True)
class TextScore:
    """Per character (lists over positions, the first position null where it needs a context)."""

    tokens: list[str]
    token_logprobs: list[float | None]
    entropies: list[float | None]  # of the model's distribution for that position, in nats
    top_logprobs: list[dict[str, float] | None]  # the `top` most probable characters there
    total_logprob: float  # the sum of token_logprobs (0.0 for a one-character text)
    scored: int  # characters with a context: len(text) - 1

    @property
    def bits_per_character(self) -> float | None:
        return -self.total_logprob / math.log(2) / self.scored if self.scored else None


@torch.inference_mode()
def score_text(model: nn.Module, vocab: Vocabulary, text: str, *, top: int = 0) -> TextScore:
    """Score `text` (non-empty) with a char-LSTM in eval mode; `UnknownCharacters` for foreign characters."""
    if not text:
        raise ValueError("text must not be empty")
    if not 0 <= top <= MAX_LOGPROBS:
        raise ValueError(f"top must be between 0 and {MAX_LOGPROBS}, got {top}")
    ids = vocab.encode(text)
    tokens = list(text)
    if len(ids) == 1:
        return TextScore(tokens, [None], [None], [None], 0.0, 0)
    logits, _ = model(ids[None, :-1])
    # float64 so a long text's total does not drift with the summation order.
    logp = torch.log_softmax(logits[0].double(), dim=-1)  # (T - 1, V): position t predicts character t + 1
    chosen = logp.gather(1, ids[1:, None])[:, 0]
    entropy = -(logp.exp() * logp).sum(dim=-1)
    tops: list[dict[str, float] | None] = [None]
    if top:
        values, indices = logp.topk(top, dim=-1)
        chars = vocab.chars
        tops += [
            {chars[i]: v for i, v in zip(row_i, row_v, strict=True)}
            for row_i, row_v in zip(indices.tolist(), values.tolist(), strict=True)
        ]
    else:
        tops += [None] * (len(tokens) - 1)
    return TextScore(
        tokens=tokens,
        token_logprobs=[None, *chosen.tolist()],
        entropies=[None, *entropy.tolist()],
        top_logprobs=tops,
        total_logprob=float(chosen.sum()),
        scored=len(tokens) - 1,
    )
