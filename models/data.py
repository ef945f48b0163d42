"""Data for the two tasks: palindromes (generated) and text (a corpus, see models/corpus.py, as a
vocabulary and training and validation windows).

Everything random is drawn from a `torch.Generator` that the caller owns (the training loop seeds
one from the config and stores its state in every checkpoint), so a run can be resumed exactly.
Batches are drawn on the CPU and moved to the model's device: the draws, and so the run, are the
same whatever the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from models.config import PalindromeConfig, TextConfig
from models.corpus import CorpusError

Encoding = Literal["one_hot", "scalar"]
NUM_DIGITS = 10

# The held-out palindromes come from their own seed. Config seeds are below 2**32, so this one can
# never coincide with a training seed (which would make the first training batch the held-out set).
EVAL_SEED = 2**32 + 2591
# Bounded validation for text: at most this many characters, whatever the size of the validation
# split, read as this many parallel contiguous streams.
VAL_MAX_CHARS = 32_768
VAL_STREAMS = 32
EVAL_BATCH_SIZE = 1024


class UnknownCharacters(ValueError):
    """Text with characters the vocabulary does not have; `.chars` lists them, sorted."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = sorted(set(chars))
        shown = ", ".join(repr(c) for c in self.chars[:20])
        more = f" and {len(self.chars) - 20} more" if len(self.chars) > 20 else ""
        super().__init__(f"characters not in the vocabulary: {shown}{more}")


class Vocabulary:
    """Sorted unique characters <-> ids.

    Sorted, not `list(set(text))` (whose order changes between Python runs with hash
    randomisation), so the same text always gives the same ids; stored in checkpoints as a list.
    """

    def __init__(self, chars: Iterable[str]) -> None:
        chars = tuple(sorted(set(chars)))
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        self.chars: tuple[str, ...] = chars
        self._index = {c: i for i, c in enumerate(chars)}
        # Code points in id order, for vectorised encoding (sorted strings = sorted code points).
        self._codes = torch.tensor([ord(c) for c in chars], dtype=torch.int64)

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.chars)} chars)"

    def missing(self, text: str) -> list[str]:
        """The characters of `text` not in the vocabulary, sorted."""
        return sorted(set(text) - set(self._index))

    def encode(self, text: str) -> torch.Tensor:
        """LongTensor (N,) of ids; raises `UnknownCharacters` naming any character not in the vocabulary."""
        if len(text) < 64:  # the vectorised path costs more than it saves on a prompt
            try:
                return torch.tensor([self._index[c] for c in text], dtype=torch.long)
            except KeyError:
                raise UnknownCharacters(self.missing(text)) from None
        codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        ids = torch.searchsorted(self._codes, codes).clamp_(max=len(self.chars) - 1)
        if not torch.equal(self._codes[ids], codes):
            raise UnknownCharacters(self.missing(text))
        return ids

    def decode(self, ids: torch.Tensor | Iterable[int]) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


class TextData:
    """A corpus as ids, split into a training head and a validation tail (contiguous, no overlap).

    Contiguous rather than shuffled windows: neighbouring windows share text, so a shuffled split
    would validate on sentences the model trained on.
    """

    def __init__(self, text: str, val_fraction: float = 0.05, vocab: Vocabulary | None = None) -> None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if not text:
            raise CorpusError("the corpus is empty")
        self.text = text
        self.val_fraction = val_fraction
        self.vocab = vocab if vocab is not None else Vocabulary.from_text(text)
        ids = self.vocab.encode(text)
        n_val = round(len(ids) * val_fraction)
        self.train_ids = ids[: len(ids) - n_val]  # (N_train,)
        self.val_ids = ids[len(ids) - n_val :]  # (N_val,)

    def with_vocab(self, vocab: Vocabulary) -> TextData:
        """The same text encoded with another vocabulary (which must cover it)."""
        return self if vocab == self.vocab else TextData(self.text, self.val_fraction, vocab)

    def check_seq_length(self, seq_length: int) -> None:
        """Raise `CorpusError` unless both splits hold at least one window of `seq_length + 1` characters."""
        for name, ids in (("training", self.train_ids), ("validation", self.val_ids)):
            if len(ids) < seq_length + 1:
                raise CorpusError(
                    f"the {name} split has {len(ids)} characters, fewer than seq_length + 1 = "
                    f"{seq_length + 1}; use a longer corpus, a shorter seq_length or another val_fraction"
                )

    def train_batch(
        self, batch_size: int, seq_length: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of the training split -> inputs (B, T) and next-character targets (B, T)."""
        offsets = torch.randint(0, len(self.train_ids) - seq_length, (batch_size,), generator=generator)
        return _windows(self.train_ids, offsets, seq_length, device)

    def val_batches(
        self, seq_length: int, device: torch.device | str = "cpu", max_chars: int = VAL_MAX_CHARS
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The start of the validation split as contiguous streams, `seq_length` characters at a time.

        Row i of each batch continues row i of the batch before it, so the evaluation carries the
        state across batches, as char-rnn does: every character is predicted with the text before
        it as context, which is how the model is used when it generates. (Windows that each start
        from a zero state score mostly context-free guesses at short `seq_length`.)
        """
        usable = min(len(self.val_ids) - 1, max_chars)
        streams = max(1, min(VAL_STREAMS, usable // seq_length))
        per_stream = usable // streams // seq_length * seq_length
        n = streams * per_stream
        inputs = self.val_ids[:n].view(streams, per_stream)  # (S, P)
        targets = self.val_ids[1 : n + 1].view(streams, per_stream)  # (S, P), shifted by one
        for start in range(0, per_stream, seq_length):
            window = slice(start, start + seq_length)
            yield inputs[:, window].to(device), targets[:, window].to(device)


def _windows(
    ids: torch.Tensor, offsets: torch.Tensor, seq_length: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of `seq_length + 1` ids at `offsets`, gathered with one index tensor (no per-sample loop)."""
    index = offsets[:, None] + torch.arange(seq_length + 1)  # (B, T+1)
    chunk = ids[index].to(device, non_blocking=True)  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


# ---------------------------------------------------------------------------------------------
# Palindromes


def random_palindromes(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """LongTensor (n, length) of palindromes, uniform over all of them (leading zeros allowed).

    Draw the first ceil(length/2) digits uniformly and mirror them: every palindrome of that length
    is then equally likely.
    """
    half = (length + 1) // 2
    first = torch.randint(0, NUM_DIGITS, (n, half), generator=generator)  # (n, ceil(L/2))
    return torch.cat([first, first[:, : length // 2].flip(1)], dim=1)  # (n, L)


def encode_digits(digits: torch.Tensor, encoding: Encoding) -> torch.Tensor:
    """LongTensor (B, T) of digits -> FloatTensor (B, T, 10) one-hot or (B, T, 1) raw values."""
    if encoding == "one_hot":
        return F.one_hot(digits.long(), NUM_DIGITS).float()
    if encoding == "scalar":
        return digits.float().unsqueeze(-1)
    raise ValueError(f"input encoding {encoding!r} is not recognized; expected 'one_hot' or 'scalar'")


class PalindromeData:
    """Palindromes of length `input_length + 1`: the first `input_length` digits are the input and
    the last digit (equal to the first) is the target.

    Training batches are drawn fresh from the caller's generator; evaluation uses a fixed held-out
    set of `eval_size` palindromes drawn from `random_seed`, which is kept apart from training seeds. For
    short inputs the held-out palindromes are also training palindromes (there are only
    10**ceil((L+1)/2) of them); that is the course's setup.
    """

    def __init__(
        self,
        input_length: int,
        encoding: Encoding = "one_hot",
        eval_size: int = 1000,
        random_seed: int = EVAL_SEED,
    ) -> None:
        if input_length < 1:
            raise ValueError(f"input_length must be at least 1, got {input_length}")
        encode_digits(torch.zeros(1, 1, dtype=torch.long), encoding)  # reject a bad encoding now
        self.input_length = input_length
        self.encoding = encoding
        generator = torch.Generator().manual_seed(random_seed)
        # uint8: the held-out set can be 100k x 1000 digits; it is encoded one chunk at a time.
        self.eval_digits = random_palindromes(eval_size, input_length + 1, generator).to(torch.uint8)

    def _split(self, digits: torch.Tensor, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        digits = digits.to(device, non_blocking=True).long()
        return encode_digits(digits[:, :-1], self.encoding), digits[:, -1]

    def train_batch(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        length: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, T, 10 or 1) float and targets (B,) long;
        T is `length` (a curriculum's), else input_length."""
        length = self.input_length if length is None else length
        if not 1 <= length <= self.input_length:
            raise ValueError(f"a training length must be in 1..{self.input_length}, got {length}")
        return self._split(random_palindromes(batch_size, length + 1, generator), device)

    def eval_batches(self, device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out set in chunks: inputs (b, T, 10 or 1) and targets (b,)."""
        for chunk in torch.split(self.eval_digits, EVAL_BATCH_SIZE):
            yield self._split(chunk, device)


def make_data(
    config: PalindromeConfig | TextConfig, text: str | None = None, *, vocab: Vocabulary | None = None
) -> PalindromeData | TextData:
    """The data object for a config; a text config needs the corpus `text` (vocab defaults to its own)."""
    if isinstance(config, PalindromeConfig):
        return PalindromeData(config.input_length, config.input_encoding, config.eval_size)
    if isinstance(config, TextConfig):
        if text is None:
            raise ValueError("a text config needs the corpus text")
        data = TextData(text, config.val_fraction, vocab)
        data.check_seq_length(config.seq_length)
        return data
    raise ValueError(f"expected a PalindromeConfig or TextConfig, got {type(config).__name__}")


def digits_from(values: Sequence[int] | str) -> torch.Tensor:
    """Validate digits given as ints or a string of digits -> LongTensor (T,)."""
    if isinstance(values, str):
        bad_chars = sorted(set(values) - set("0123456789"))
        if bad_chars:
            raise ValueError(f"digits must be 0..9, got {', '.join(map(repr, bad_chars))}")
        values = [int(ch) for ch in values]
    values = list(values)
    if not values:
        raise ValueError("digits must not be empty")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < NUM_DIGITS]
    if bad:
        raise ValueError(f"digits must be integers 0..9, got {bad[:10]}")
    return torch.tensor(values, dtype=torch.long)
