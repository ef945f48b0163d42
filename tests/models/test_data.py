"""Corpus decoding, vocabulary, text windows and palindrome data."""

from __future__ import annotations

import math

import pytest
import torch

from models.config import PalindromeConfig, TextConfig
from models.corpus import CorpusError, decode_corpus, load_corpus
from models.data import (
    VAL_MAX_CHARS,
    VAL_STREAMS,
    PalindromeData,
    TextData,
    UnknownCharacters,
    Vocabulary,
    encode_digits,
    make_data,
    random_palindromes,
)
from tests.data import GRIMMS_EXCERPT, LATIN1_EXCERPT

# ---------------------------------------------------------------------------------------------
# Corpus decoding


def test_latin1_corpus_is_rejected_naming_the_byte_offset() -> None:
    raw = LATIN1_EXCERPT.read_bytes()
    # Latin-1 text: the first non-ASCII byte is where UTF-8 decoding must fail.
    offset = next(i for i, b in enumerate(raw) if b >= 0x80)
    line = raw[:offset].count(b"\n") + 1

    with pytest.raises(CorpusError) as excinfo:
        load_corpus(LATIN1_EXCERPT)

    message = str(excinfo.value)
    assert "not valid UTF-8" in message
    assert f"byte offset {offset}" in message
    assert f"line {line}" in message
    assert f"{raw[offset]:02x}" in message


def test_corpus_error_names_the_offending_bytes_and_line() -> None:
    raw = b"first line\nsecond \xff\xfe rest"
    with pytest.raises(CorpusError, match=r"byte offset 18 \(line 2, column 8\): bytes ff"):
        decode_corpus(raw)


def test_byte_order_mark_is_dropped_and_line_ends_normalised(grimms: str) -> None:
    assert decode_corpus("\ufeffOnce upon\r\na time".encode()) == "Once upon\na time"
    assert not grimms.startswith("\ufeff")
    assert "\ufeff" not in grimms and "\r" not in grimms


def test_gutenberg_header_and_licence_are_stripped(grimms: str) -> None:
    raw_text = load_corpus(GRIMMS_EXCERPT)
    assert "*** START OF" in raw_text and "Project Gutenberg" in raw_text

    assert "*** START OF" not in grimms and "*** END OF" not in grimms
    assert "Gutenberg" not in grimms  # header, "End of Project Gutenberg's ..." line and licence
    assert grimms.startswith("Produced by Emma Dudding")
    assert "HANSEL AND GRETEL" in grimms
    assert grimms.rstrip().endswith("since.")
    # Without the flag nothing is removed: the header and the licence are still there.
    assert raw_text.startswith("The Project Gutenberg EBook of Grimms")
    assert raw_text.endswith("especially commercial\nredistribution.\n")


def test_gutenberg_markers_are_optional() -> None:
    text = "No markers here.\nJust text.\n"
    assert decode_corpus(text.encode(), strip_gutenberg=True) == text
    marked = "header\n*** START OF THE BOOK ***\nbody\n*** END OF THE BOOK ***\nlicence\n"
    assert decode_corpus(marked.encode(), strip_gutenberg=True) == "body\n"


# ---------------------------------------------------------------------------------------------
# Vocabulary


def test_vocabulary_is_sorted_and_independent_of_character_order(small_text: str) -> None:
    vocab = Vocabulary.from_text(small_text)
    assert vocab.chars == tuple(sorted(set(small_text)))
    assert Vocabulary(reversed(vocab.chars)) == vocab
    assert Vocabulary.from_text(small_text[::-1]) == vocab
    # Stored as a plain list in checkpoints and rebuilt from it unchanged.
    assert Vocabulary(list(vocab.chars)).chars == vocab.chars


def test_encode_decode_round_trip_on_both_paths(small_text: str) -> None:
    vocab = Vocabulary.from_text(small_text)
    ids = vocab.encode(small_text)  # vectorised path
    assert ids.dtype == torch.long and ids.shape == (len(small_text),)
    assert vocab.decode(ids) == small_text
    short = small_text[:40]  # per-character path
    assert torch.equal(vocab.encode(short), ids[:40])
    assert [vocab.chars[i] for i in ids[:40].tolist()] == list(short)


@pytest.mark.parametrize("length", [5, 200])
def test_encode_names_unknown_characters(length: int) -> None:
    vocab = Vocabulary("abc ")
    text = ("abc " * 100)[: length - 2] + "€§"
    with pytest.raises(UnknownCharacters) as excinfo:
        vocab.encode(text)
    assert excinfo.value.chars == ["§", "€"]
    assert "'€'" in str(excinfo.value) and "'§'" in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# Text data


def test_split_is_contiguous_with_validation_as_tail(small_text: str) -> None:
    data = TextData(small_text, val_fraction=0.05)
    n_val = round(len(small_text) * 0.05)
    assert len(data.val_ids) == n_val
    assert data.vocab.decode(data.train_ids) == small_text[:-n_val]
    assert data.vocab.decode(data.val_ids) == small_text[-n_val:]


def test_training_windows_are_real_text_shifted_by_one(small_text: str) -> None:
    data = TextData(small_text)
    train_text = data.vocab.decode(data.train_ids)
    inputs, targets = data.train_batch(8, 25, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (8, 25)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    for row_in, row_out in zip(inputs, targets, strict=True):
        window = data.vocab.decode(row_in) + data.vocab.decode(row_out[-1:])
        assert window in train_text


def test_training_windows_follow_the_generator(small_text: str) -> None:
    data = TextData(small_text)

    def draw(random_seed: int) -> torch.Tensor:
        return data.train_batch(4, 10, torch.Generator().manual_seed(random_seed))[0]

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_validation_streams_are_fixed_bounded_and_contiguous(grimms: str) -> None:
    data = TextData(grimms, val_fraction=0.8)
    assert len(data.val_ids) > VAL_MAX_CHARS + 10_000  # so the bound, not the split, limits the streams
    first = list(data.val_batches(30))
    again = list(data.val_batches(30))
    n_chars = sum(inputs.numel() for inputs, _ in first)
    assert VAL_MAX_CHARS - 30 * VAL_STREAMS < n_chars <= VAL_MAX_CHARS
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert all(inputs.shape == (VAL_STREAMS, 30) for inputs, _ in first)
    # Each row reads on where the same row of the previous batch stopped, and targets are inputs
    # shifted by one character: stream i is one stretch of the validation text.
    streams = torch.cat([inputs for inputs, _ in first], dim=1)
    stream_targets = torch.cat([targets for _, targets in first], dim=1)
    val_text = data.vocab.decode(data.val_ids)
    for row in (0, VAL_STREAMS - 1):
        text = data.vocab.decode(streams[row]) + data.vocab.decode(stream_targets[row][-1:])
        assert text in val_text
        assert torch.equal(streams[row][1:], stream_targets[row][:-1])


def test_validation_of_a_short_split_still_yields_a_full_window() -> None:
    data = TextData("abcdefghij" * 10, val_fraction=0.2)  # 20 validation characters
    batches = list(data.val_batches(8))
    assert [inputs.shape for inputs, _ in batches] == [(2, 8)]


def test_corpus_too_short_for_the_sequence_length() -> None:
    config = TextConfig(seq_length=100, device="cpu")
    with pytest.raises(CorpusError, match="validation split has"):
        make_data(config, "a short corpus " * 20)
    with pytest.raises(CorpusError, match="empty"):
        make_data(config, "")
    with pytest.raises(ValueError, match="needs the corpus text"):
        make_data(config)


# ---------------------------------------------------------------------------------------------
# Palindromes


@pytest.mark.parametrize("length", [1, 2, 5, 6, 11])
def test_random_palindromes_are_palindromes(length: int) -> None:
    digits = random_palindromes(500, length, torch.Generator().manual_seed(0))
    assert digits.shape == (500, length)
    assert torch.equal(digits, digits.flip(1))
    assert digits.min() >= 0 and digits.max() <= 9


def test_palindromes_are_uniform_with_leading_zeros() -> None:
    # Length 6: three free digits, 1000 palindromes, each digit position uniform over 0..9.
    n = 20_000
    digits = random_palindromes(n, 6, torch.Generator().manual_seed(0))
    for position in range(3):
        counts = torch.bincount(digits[:, position], minlength=10).double()
        # Chi-square with 9 degrees of freedom: 99.9th percentile is about 27.9.
        chi2 = ((counts - n / 10) ** 2 / (n / 10)).sum().item()
        assert chi2 < 27.9, (position, counts)
    assert (digits[:, 0] == 0).any()


@pytest.mark.parametrize("encoding", ["one_hot", "scalar"])
def test_palindrome_batches_target_the_first_digit(encoding: str) -> None:
    data = PalindromeData(input_length=7, encoding=encoding)
    inputs, targets = data.train_batch(64, torch.Generator().manual_seed(3))
    assert targets.shape == (64,) and targets.dtype == torch.long
    if encoding == "one_hot":
        assert inputs.shape == (64, 7, 10)
        assert torch.equal(inputs.sum(-1), torch.ones(64, 7))
        digits = inputs.argmax(-1)
    else:
        assert inputs.shape == (64, 7, 1) and inputs.dtype == torch.float32
        digits = inputs.squeeze(-1).long()
        assert torch.equal(inputs.squeeze(-1), digits.float())  # raw digit values, as in the course
    full = torch.cat([digits, targets[:, None]], dim=1)  # (B, 8)
    assert torch.equal(full, full.flip(1))
    assert torch.equal(targets, digits[:, 0])


def test_held_out_set_is_fixed_and_apart_from_training_batches() -> None:
    a = PalindromeData(input_length=9, eval_size=1000)
    b = PalindromeData(input_length=9, eval_size=1000)
    assert torch.equal(a.eval_digits, b.eval_digits)
    assert sum(len(t) for _, t in a.eval_batches()) == 1000
    for random_seed in (0, 1, 2**32 - 1):  # any config seed
        inputs, targets = a.train_batch(1000, torch.Generator().manual_seed(random_seed))
        train_rows = torch.cat([inputs.argmax(-1), targets[:, None]], dim=1)
        assert not torch.equal(train_rows, a.eval_digits.long())
    # Length 9+1 palindromes: 10^5 of them, so two independent draws of 1000 overlap little.
    eval_set = {tuple(r) for r in a.eval_digits.tolist()}
    overlap = sum(tuple(r) in eval_set for r in train_rows.tolist())
    assert overlap < 50


def test_make_data_for_palindromes_follows_the_config() -> None:
    config = PalindromeConfig(input_length=4, input_encoding="scalar", eval_size=2000, device="cpu")
    data = make_data(config)
    assert isinstance(data, PalindromeData)
    assert data.eval_digits.shape == (2000, 5)
    inputs, _ = next(data.eval_batches())
    assert inputs.shape[1:] == (4, 1)


def test_encode_digits_rejects_an_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="input encoding 'binary' is not recognized"):
        encode_digits(torch.zeros(1, 3, dtype=torch.long), "binary")
    assert math.isclose(encode_digits(torch.tensor([[9]]), "scalar").item(), 9.0)
