"""Sampling from a trained model: text generation (char_lstm) and palindrome prediction.

Text generation carries the LSTM state one character at a time, so the cost per character is
constant and `length` can be far beyond the training `seq_length` (the prefix is never re-run).

Randomness: every row of a batch has its own `torch.Generator` seeded with its `random_seed`. It
draws the start character of an empty seed text, then all `length` uniforms up front; the i-th
character is drawn by inverting the cumulative distribution at the i-th uniform. A row's text thus
depends on its seed text and random_seed only, not on the other rows of a batch (see
`generate_batch`), and never on torch's global RNG.

The sampling itself is `models.decode.sampler.sample`, the one sampler that the serving batch steps
with too (its docstring has the rule for changing it): this module only carries the state.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from models.data import NUM_DIGITS, Encoding, UnknownCharacters, Vocabulary, digits_from, encode_digits
from models.decode.limits import DEFAULT_PENALTY_WINDOW, MAX_RANDOM_SEED
from models.decode.logprobs import CharLogprobs, RawLogprobs, check_logprobs
from models.decode.processors import (
    History,
    Penalties,
    PenaltyBuffers,
    PenaltyNeeds,
    penalty_row,
    process,
    record,
)
from models.decode.sampler import Needs, SamplerBuffers, check_sampling, sample, settings_row

__all__ = ["Generation", "UnknownCharacters", "generate", "generate_batch", "predict_palindrome"]


@dataclass(frozen=True)
class Generation:
    """A continuation of exactly `length` characters (the seed text is not repeated).

    `logprobs[i]` is log p(text[i] | everything before it) under the model itself: the raw
    distribution, before penalties, temperature, top-k and top-p, whatever settings chose the
    character (models/decode/logprobs.py: the score of the text, not of the sampler). None unless
    asked for (`return_logprobs`, or `logprobs` > 0). `top_logprobs[i]`: the `logprobs` most likely
    characters at position i under that same distribution, most likely first; None when logprobs = 0.
    """

    text: str
    random_seed: int
    logprobs: list[float] | None = None
    top_logprobs: list[list[tuple[str, float]]] | None = None


def generate(
    model: nn.Module,
    vocab: Vocabulary,
    seed_text: str,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    random_seed: int | None = None,
    return_logprobs: bool = False,
    *,
    logprobs: int = 0,
    repetition_penalty: float = 1.0,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    no_repeat_ngram_size: int = 0,
    penalty_window: int = DEFAULT_PENALTY_WINDOW,
) -> Generation:
    """Continue `seed_text` by `length` characters.

    temperature 0 is greedy (argmax); otherwise sample from softmax(logits / temperature), keeping
    only the `top_k` most likely characters and/or the smallest set whose probability reaches
    `top_p`. The seed text primes the state in one forward call; an empty seed text starts from a
    character drawn uniformly from the vocabulary by the seeded generator (it is not part of the
    output). `random_seed=None` draws a fresh seed; it is returned so the text can be reproduced.

    The penalties and `no_repeat_ngram_size` change the logits before temperature, top-k and top-p
    (definitions and bounds: models/decode/processors.py); `logprobs` (0..5) reports, see
    `Generation`. This is the one-stream reference of `models.decode.Stream`: the same settings give
    the same text there.
    """
    if not isinstance(seed_text, str):
        raise TypeError(f"seed_text must be a string, got {type(seed_text).__name__}")
    (generation,) = generate_batch(
        model, vocab, [seed_text], length, temperature, top_k, top_p, random_seed, return_logprobs,
        logprobs=logprobs, repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
        frequency_penalty=frequency_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        penalty_window=penalty_window,
    )  # fmt: skip
    return generation


def generate_batch(
    model: nn.Module,
    vocab: Vocabulary,
    seed_texts: Sequence[str],
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    random_seed: int | Sequence[int | None] | None = None,
    return_logprobs: bool = False,
    *,
    logprobs: int = 0,
    repetition_penalty: float = 1.0,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    no_repeat_ngram_size: int = 0,
    penalty_window: int = DEFAULT_PENALTY_WINDOW,
) -> list[Generation]:
    """`generate` for many seed texts at once, one forward call per character for the whole batch.

    `random_seed`: one per seed text, or one int `s` meaning `s, s+1, ...` for the rows, or None.
    Each seed text primes its own state (no padding, so seed texts of any length mix), then the rows
    are stepped together. Guarantee: row i is the text `generate(model, vocab, seed_texts[i], ...,
    random_seed=seed_i)` gives, except where a batched matrix product rounds differently from a
    single-row one and that flips a choice (a near-tie in greedy, or a uniform within ~1e-7 of a
    bucket edge); on CPU this is checked in the tests, it is not promised bit for bit on CUDA.
    """
    if isinstance(seed_texts, str):
        raise TypeError("seed_texts must be a sequence of strings; use generate() for a single one")
    seed_texts = list(seed_texts)
    if any(not isinstance(s, str) for s in seed_texts):
        raise TypeError("seed_texts must all be strings")
    check_sampling(length, temperature, top_k, top_p)
    check_logprobs(logprobs)
    penalties = Penalties(
        repetition_penalty, presence_penalty, frequency_penalty, no_repeat_ngram_size, penalty_window
    )
    random_seeds = _row_seeds(random_seed, len(seed_texts))
    missing = sorted(set().union(*(vocab.missing(s) for s in seed_texts)))
    if missing:
        raise UnknownCharacters(missing)
    if not seed_texts:
        return []
    options = _Options(temperature, top_k, top_p, penalties, logprobs, return_logprobs or logprobs > 0)
    texts, scores = _sample(model, vocab, seed_texts, length, options, random_seeds)
    generations = []
    for i, (text, row_seed) in enumerate(zip(texts, random_seeds, strict=True)):
        chosen = top = None
        if scores is not None:
            chosen = [entry.logprob for entry in scores[i]]
            if logprobs:
                top = [[(vocab.chars[c], lp) for c, lp in entry.top] for entry in scores[i]]
        generations.append(Generation(text, row_seed, chosen, top))
    return generations


@dataclass(frozen=True)
class _Options:
    """The settings every row of `_sample` shares."""

    temperature: float
    top_k: int | None
    top_p: float | None
    penalties: Penalties
    top_logprobs: int
    scores: bool  # whether to take the log-probabilities at all


@torch.inference_mode()
def _sample(
    model: nn.Module,
    vocab: Vocabulary,
    seed_texts: list[str],
    length: int,
    options: _Options,
    random_seeds: list[int],
) -> tuple[list[str], list[list[CharLogprobs]] | None]:
    device = next(model.parameters()).device
    generators = [torch.Generator().manual_seed(s) for s in random_seeds]
    with _eval_mode(model):
        last_logits, states, contexts = [], [], []
        primed: dict[
            str, tuple[torch.Tensor, tuple[torch.Tensor, ...]]
        ] = {}  # a repeated seed text runs once
        for text, generator in zip(seed_texts, generators, strict=True):
            ids = vocab.encode(text) if text else torch.randint(len(vocab), (1,), generator=generator)
            if text in primed:
                last, state = primed[text]
            else:
                logits, state = model(ids.to(device)[None])  # (1, n, V), (h, c) each (L, 1, H)
                last = logits[:, -1]  # (1, V)
                if text:
                    primed[text] = last, state
            last_logits.append(last)
            states.append(state)
            contexts.append(ids.tolist())  # what the penalties count from: the primed characters
        logits = torch.cat(last_logits).float()  # (B, V)
        # char_lstm's state is (h, c), each (L, B, H): the batch is dimension 1.
        state = tuple(torch.cat(parts, dim=1) for parts in zip(*states, strict=True))
        uniforms = torch.stack([torch.rand(length, generator=g) for g in generators]).to(device)  # (B, N)

        (B, V) = logits.shape
        o = options
        needs = Needs.of(o.temperature, o.top_k, o.top_p)
        settings = torch.tensor([settings_row(V, o.temperature, o.top_k, o.top_p)] * B, device=device)
        # The uniforms as the sampler's window: column t holds every row's uniform of character t.
        sampler = SamplerBuffers.over(torch.empty(B, V, device=device), settings, uniforms)
        histories = [History(o.penalties, c) if o.penalties.active else None for c in contexts]
        penalty_needs = PenaltyNeeds.of(o.penalties)
        rows = torch.tensor([penalty_row(V, h) for h in histories], device=device)  # (B, V + 3)
        penalty_buffers = PenaltyBuffers.over(rows[:, :V], rows[:, V:])
        out = torch.empty(B, length, dtype=torch.long, device=device)  # (B, N)
        scores: list[list[CharLogprobs]] | None = [[] for _ in range(B)] if o.scores else None
        for t in range(length):
            sampler.logits.copy_(logits)
            # The same order as DecodeBatch.step: raw log-probabilities, penalties, the sampler.
            raw = RawLogprobs(sampler.logits, range(B), [o.top_logprobs] * B) if scores is not None else None
            if penalty_needs.any:
                process(sampler.logits, penalty_buffers, penalty_needs, histories)
            sample(sampler, t, needs)
            out[:, t] = sampler.ids[:, 0]
            if raw is not None or penalty_needs.any:
                chosen = sampler.ids_flat.tolist()
                if penalty_needs.any:
                    record(penalty_buffers, chosen, histories)
                if raw is not None and scores is not None:
                    for row_scores, entry in zip(scores, raw.take(chosen), strict=True):
                        row_scores.append(entry)
            if t + 1 < length:
                step_logits, state = model(sampler.ids, state)  # (B, 1, V)
                logits = step_logits[:, -1].float()
    texts = [vocab.decode(row) for row in out.tolist()]
    return texts, scores


def predict_palindrome(
    model: nn.Module, digits: Sequence[int] | str, encoding: Encoding = "one_hot"
) -> tuple[int, list[float]]:
    """The predicted last digit of the palindrome that starts with `digits`, and the 10 probabilities.

    `digits` (ints 0..9 or a string of them) should be as long as the model's training
    `input_length`; the model accepts any length, but only that one was trained.
    """
    inputs = encode_digits(digits_from(digits)[None], encoding)  # (1, T, 10 or 1)
    device = next(model.parameters()).device
    with torch.inference_mode(), _eval_mode(model):
        logits, _ = model(inputs.to(device))  # (1, T, 10)
        probs = logits[0, -1].float().softmax(-1).tolist()
    assert len(probs) == NUM_DIGITS
    return max(range(NUM_DIGITS), key=probs.__getitem__), probs


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) for the block, then the model's previous mode again."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _row_seeds(random_seed: int | Sequence[int | None] | None, n: int) -> list[int]:
    """One random seed per row: given, counted up from one int, or drawn fresh (and reported back)."""
    if random_seed is None:
        random_seeds: list[int | None] = [None] * n
    elif isinstance(random_seed, bool):  # an int subclass, but True is not a seed
        raise _not_a_seed(random_seed)
    elif isinstance(random_seed, int):
        random_seeds = [random_seed + i for i in range(n)]
    else:
        random_seeds = list(random_seed)
        if len(random_seeds) != n:
            raise ValueError(f"random_seed has {len(random_seeds)} entries for {n} seed texts")
    for s in random_seeds:
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_RANDOM_SEED):
            raise _not_a_seed(s)
    # 32 bits: short enough to read back and type in, and JSON-safe.
    return [secrets.randbits(32) if s is None else s for s in random_seeds]


def _not_a_seed(value: object) -> ValueError:
    return ValueError(f"random_seed must be an integer in [0, 2**64 - 1] or None, got {value!r}")
