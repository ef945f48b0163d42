"""One generation request as the decode batch serves it."""

from __future__ import annotations

from dataclasses import dataclass

from models.decode.sampler import MAX_RANDOM_SEED, check_sampling


@dataclass(frozen=True)
class Stream:
    """Continue `seed_text` by `length` characters (see `models.sample.generate`)."""

    seed_text: str
    length: int
    random_seed: int
    temperature: float = 1.0  # 0 is greedy (argmax)
    top_k: int | None = None  # keep the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches top_p

    def __post_init__(self) -> None:
        if not isinstance(self.seed_text, str):
            raise TypeError(f"seed_text must be a string, got {type(self.seed_text).__name__}")
        check_sampling(self.length, self.temperature, self.top_k, self.top_p)
        s = self.random_seed
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_RANDOM_SEED:
            raise ValueError(f"random_seed must be an integer in [0, 2**64 - 1], got {s!r}")
