"""Log-probabilities of generated characters: the chosen one's and the most likely alternatives.

They come from the model's RAW next-character distribution, log_softmax of the logits before the
penalties, temperature, top-k and top-p touch them (what vLLM returns by default): a score of the text
under the model, the same whatever sampling settings chose it, so bits per character read straight off
it. A character banned or penalised away still has its raw log-probability, and a chosen character
outside the alternatives (sampled from the tail) still has its own.

`RawLogprobs` takes the rows that asked before a step (the logits buffer is overwritten by the step),
and `take` pairs them with the chosen ids after it. The decode batch and `models.sample.generate` both
call it, so both report the same numbers for the same logits; rows that did not ask cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from models.decode.limits import MAX_LOGPROBS


def check_logprobs(logprobs: int) -> None:
    """ValueError naming `logprobs` unless it is an integer in [0, MAX_LOGPROBS]."""
    if isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= MAX_LOGPROBS:
        raise ValueError(f"logprobs must be an integer in [0, {MAX_LOGPROBS}], got {logprobs!r}")


class CharLogprobs(NamedTuple):
    """One generated character's log-probability and the `logprobs` most likely characters' (ids),
    most likely first."""

    logprob: float
    top: list[tuple[int, float]]


class RawLogprobs:
    """log_softmax of the logits rows `rows` (asking for `top[i]` alternatives each), taken now."""

    def __init__(self, logits: torch.Tensor, rows: Sequence[int], top: Sequence[int]) -> None:
        self.rows, self.top = list(rows), list(top)
        index = torch.tensor(self.rows, device=logits.device)
        self.log_probs = torch.log_softmax(torch.index_select(logits, 0, index), 1)  # (m, V)
        k = max(self.top, default=0)
        # topk, not a stable sort (a third of the cost): its order among exactly equal values is its
        # own, but it depends on the row's values only, so it is the same alone, in any batch, and on
        # both steps.
        values, ids = torch.topk(self.log_probs, k, dim=1)
        self._values, self._ids = values.tolist(), ids.tolist()

    def take(self, chosen: Sequence[int]) -> list[CharLogprobs]:
        """Each asking row's entry, given every row's chosen id (indexed by row, like the logits)."""
        picked = [chosen[row] for row in self.rows]
        index = torch.tensor(picked, device=self.log_probs.device)[:, None]
        logprobs = torch.gather(self.log_probs, 1, index)[:, 0].tolist()
        return [
            CharLogprobs(lp, list(zip(ids[:k], values[:k], strict=True)))
            for lp, ids, values, k in zip(logprobs, self._ids, self._values, self.top, strict=True)
        ]
