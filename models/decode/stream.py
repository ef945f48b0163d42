"""One generation request as the decode batch serves it."""

from __future__ import annotations

from dataclasses import dataclass

from models.decode.limits import DEFAULT_PENALTY_WINDOW, MAX_RANDOM_SEED
from models.decode.logprobs import check_logprobs
from models.decode.processors import Penalties
from models.decode.sampler import check_sampling


@dataclass(frozen=True)
class Stream:
    """Continue `seed_text` by `length` characters (see `models.sample.generate`).

    The penalties (models/decode/processors.py has their definitions) change the logits before
    temperature, top-k and top-p; `logprobs` only reports (models/decode/logprobs.py), it changes no
    character. Every default is neutral: a stream that sets none of them gives the text it gave before.
    """

    seed_text: str
    length: int
    random_seed: int
    temperature: float = 1.0  # 0 is greedy (argmax)
    top_k: int | None = None  # keep the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches top_p
    logprobs: int = 0  # 0..5; k > 0 reports each character's raw log-probability and k alternatives
    repetition_penalty: float = 1.0  # (0, 2], CTRL / transformers; 1 is off
    presence_penalty: float = 0.0  # [-2, 2], OpenAI
    frequency_penalty: float = 0.0  # [-2, 2], OpenAI
    no_repeat_ngram_size: int = 0  # 0..64, transformers; 0 is off
    penalty_window: int = DEFAULT_PENALTY_WINDOW  # 1..1024: the characters the three penalties count

    def __post_init__(self) -> None:
        if not isinstance(self.seed_text, str):
            raise TypeError(f"seed_text must be a string, got {type(self.seed_text).__name__}")
        check_sampling(self.length, self.temperature, self.top_k, self.top_p)
        s = self.random_seed
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_RANDOM_SEED:
            raise ValueError(f"random_seed must be an integer in [0, 2**64 - 1], got {s!r}")
        check_logprobs(self.logprobs)
        self.penalties  # noqa: B018 (validates them)

    @property
    def penalties(self) -> Penalties:
        return Penalties(
            self.repetition_penalty,
            self.presence_penalty,
            self.frequency_penalty,
            self.no_repeat_ngram_size,
            self.penalty_window,
        )
