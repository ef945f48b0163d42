"""Text generation and palindrome prediction."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint import load_model, load_vocabulary
from models.data import Vocabulary
from models.sample import Generation, UnknownCharacters, generate, generate_batch, predict_palindrome


@pytest.fixture(scope="module")
def lm(text_run) -> tuple[torch.nn.Module, Vocabulary]:
    ckpt = text_run.final_checkpoint
    return load_model(ckpt), load_vocabulary(ckpt)


def manual_greedy(model, vocab: Vocabulary, seed_text: str, length: int) -> tuple[str, list[float]]:
    """Greedy decoding written out by hand: argmax of each step's logits, state carried."""
    out, logprobs = [], []
    with torch.no_grad():
        logits, state = model(vocab.encode(seed_text)[None])
        for _ in range(length):
            log_p = logits[0, -1].log_softmax(-1)
            next_id = int(torch.argmax(log_p))
            out.append(next_id)
            logprobs.append(float(log_p[next_id]))
            logits, state = model(torch.tensor([[next_id]]), state)
    return vocab.decode(out), logprobs


def test_greedy_is_the_argmax_loop(lm) -> None:
    model, vocab = lm
    result = generate(model, vocab, "Once upon a time", 80, temperature=0, return_logprobs=True)
    expected_text, expected_logprobs = manual_greedy(model, vocab, "Once upon a time", 80)
    assert result.text == expected_text
    assert result.logprobs == pytest.approx(expected_logprobs, abs=1e-5)


def test_top_k_1_and_tiny_top_p_are_greedy(lm) -> None:
    model, vocab = lm
    greedy = generate(model, vocab, "The king", 60, temperature=0).text
    assert generate(model, vocab, "The king", 60, temperature=0.8, top_k=1, random_seed=5).text == greedy
    assert generate(model, vocab, "The king", 60, temperature=1.5, top_p=1e-9, random_seed=5).text == greedy


def test_same_random_seed_same_text(lm) -> None:
    model, vocab = lm
    a = generate(model, vocab, "The", 100, temperature=1.0, random_seed=123)
    b = generate(model, vocab, "The", 100, temperature=1.0, random_seed=123)
    c = generate(model, vocab, "The", 100, temperature=1.0, random_seed=124)
    assert a == b and a.random_seed == 123
    assert a.text != c.text
    assert len(a.text) == 100 and set(a.text) <= set(vocab.chars)


def test_an_unseeded_call_reports_a_seed_that_reproduces_it(lm) -> None:
    model, vocab = lm
    first = generate(model, vocab, "The", 60, temperature=1.0, top_k=20, top_p=0.9)
    again = generate(
        model, vocab, "The", 60, temperature=1.0, top_k=20, top_p=0.9, random_seed=first.random_seed
    )
    assert again.text == first.text


def test_empty_seed_starts_from_a_seeded_random_character(lm) -> None:
    model, vocab = lm
    a = generate(model, vocab, "", 50, random_seed=7)
    assert len(a.text) == 50 and a == generate(model, vocab, "", 50, random_seed=7)
    starts = {generate(model, vocab, "", 1, temperature=0, random_seed=s).text for s in range(20)}
    assert len(starts) > 1  # the start character differs with the seed


def test_ten_thousand_characters_carry_the_state(lm) -> None:
    model, vocab = lm
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    try:
        result = generate(model, vocab, "Once", 10_000, temperature=0.9, random_seed=0)
    finally:
        handle.remove()
    assert len(result.text) == 10_000
    # One call primes the seed, then one character per call: the prefix is never re-run.
    assert seen[0] == 4 and set(seen[1:]) == {1} and len(seen) == 10_000


def test_logprobs_score_the_text_under_the_model(lm) -> None:
    model, vocab = lm
    result = generate(model, vocab, "Once", 30, temperature=2.0, random_seed=3, return_logprobs=True)
    assert len(result.logprobs) == 30 and all(lp <= 0 for lp in result.logprobs)
    # Recompute with one teacher-forced forward pass over seed + text (temperature 1, no filtering).
    ids = vocab.encode("Once" + result.text)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    expected = logits[0, 3:].log_softmax(-1).gather(1, ids[4:, None]).squeeze(1)
    assert result.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
    assert generate(model, vocab, "Once", 5).logprobs is None


def test_top_logprobs_are_the_raw_distribution_whatever_the_settings(lm) -> None:
    # Penalties, temperature and top-k choose the characters; the report scores them under the model.
    model, vocab = lm
    result = generate(
        model, vocab, "Once", 40, temperature=1.5, top_k=5, random_seed=4, logprobs=3,
        repetition_penalty=1.6, frequency_penalty=0.5, no_repeat_ngram_size=3,
    )  # fmt: skip
    assert result.logprobs is not None and result.top_logprobs is not None
    ids = vocab.encode("Once" + result.text)
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
    raw = logits[0, 3:].log_softmax(-1)  # (40, V)
    assert result.logprobs == pytest.approx(raw.gather(1, ids[4:, None])[:, 0].tolist(), abs=1e-4)
    values, order = raw.sort(dim=-1, descending=True, stable=True)
    assert [[c for c, _ in top] for top in result.top_logprobs] == [
        [vocab.chars[i] for i in row] for row in order[:, :3].tolist()
    ]
    assert [[lp for _, lp in top] for top in result.top_logprobs] == [
        pytest.approx(row, abs=1e-4) for row in values[:, :3].tolist()
    ]
    plain = generate(model, vocab, "Once", 40, temperature=1.5, top_k=5, random_seed=4, return_logprobs=True)
    assert plain.top_logprobs is None and plain.text != result.text  # the penalties changed the text


def test_a_batch_with_penalties_equals_each_row_alone(lm) -> None:
    model, vocab = lm
    seed_texts = ["Once upon a time", "", "The", "And the king said: "]
    settings = dict(
        temperature=0.7, presence_penalty=0.6, no_repeat_ngram_size=4, penalty_window=20, logprobs=2
    )
    batch = generate_batch(model, vocab, seed_texts, 90, random_seed=[1, 2, 3, 4], **settings)
    alone = [
        generate(model, vocab, s, 90, random_seed=r, **settings)
        for s, r in zip(seed_texts, [1, 2, 3, 4], strict=True)
    ]
    assert [g.text for g in batch] == [g.text for g in alone]
    for a, b in zip(batch, alone, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


def test_samples_follow_the_model_distribution(lm) -> None:
    model, vocab = lm
    with torch.no_grad():
        logits, _ = model(vocab.encode("The ")[None])
    probs = logits[0, -1].softmax(-1)
    n = 3000
    results = generate_batch(model, vocab, ["The "] * n, 1, temperature=1.0, random_seed=0)
    counts = torch.bincount(vocab.encode("".join(r.text for r in results)), minlength=len(vocab)).double()
    expected = probs.double() * n
    frequent = expected > 20
    chi2 = ((counts[frequent] - expected[frequent]) ** 2 / expected[frequent]).sum().item()
    dof = int(frequent.sum()) - 1
    assert chi2 < dof + 5 * (2 * dof) ** 0.5  # mean + 5 standard deviations of chi-square
    assert counts[~frequent].sum() < expected[~frequent].sum() + 5 * expected[~frequent].sum() ** 0.5 + 5


def test_top_k_and_top_p_restrict_the_choices(lm) -> None:
    model, vocab = lm
    with torch.no_grad():
        logits, _ = model(vocab.encode("The ")[None])
    probs = logits[0, -1].softmax(-1)
    top3 = {vocab.chars[i] for i in probs.topk(3).indices.tolist()}
    firsts = {r.text for r in generate_batch(model, vocab, ["The "] * 300, 1, top_k=3, random_seed=0)}
    assert firsts <= top3 and len(firsts) > 1

    sorted_probs, order = probs.sort(descending=True)
    nucleus_size = int((sorted_probs.cumsum(0) - sorted_probs < 0.5).sum())
    nucleus = {vocab.chars[i] for i in order[:nucleus_size].tolist()}
    firsts = {r.text for r in generate_batch(model, vocab, ["The "] * 300, 1, top_p=0.5, random_seed=0)}
    assert firsts <= nucleus


def test_batch_equals_generating_each_seed_text_alone(lm) -> None:
    """Guaranteed: row i equals generate() with the same seed text and random_seed (checked on CPU)."""
    model, vocab = lm
    seed_texts = ["Once upon a time", "", "The", "And the king said: "]
    batch = generate_batch(
        model, vocab, seed_texts, 120, temperature=0.9, top_k=30, random_seed=[11, 12, 13, 14]
    )
    alone = [
        generate(model, vocab, s, 120, temperature=0.9, top_k=30, random_seed=r)
        for s, r in zip(seed_texts, [11, 12, 13, 14], strict=True)
    ]
    assert [g.text for g in batch] == [g.text for g in alone]
    # One int seeds the rows with s, s+1, ...
    assert generate_batch(model, vocab, seed_texts, 120, temperature=0.9, top_k=30, random_seed=11) == batch
    assert generate_batch(model, vocab, [], 10) == []


def test_unknown_characters_are_named(lm) -> None:
    model, vocab = lm
    with pytest.raises(UnknownCharacters) as excinfo:
        generate(model, vocab, "Once €uro and § signs", 10)
    assert excinfo.value.chars == ["§", "€"]
    assert "'€'" in str(excinfo.value) and "'§'" in str(excinfo.value)
    with pytest.raises(UnknownCharacters, match="'€'"):
        generate_batch(model, vocab, ["fine", "not €"], 10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"length": -1}, "length"),
        ({"length": 2.5}, "length"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"random_seed": -1}, "random_seed"),
        ({"logprobs": 6}, "logprobs"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
        ({"no_repeat_ngram_size": 65}, "no_repeat_ngram_size"),
        ({"penalty_window": 0}, "penalty_window"),
    ],
)
def test_parameters_are_validated(lm, kwargs: dict, name: str) -> None:
    model, vocab = lm
    args = {"length": 10, **kwargs}
    with pytest.raises(ValueError, match=name):
        generate(model, vocab, "The", **args)


def test_zero_length_and_mode_restored(lm) -> None:
    model, vocab = lm
    model.train()
    try:
        assert generate(model, vocab, "The", 0, random_seed=1) == Generation("", 1, None)
        assert model.training  # generate switched to eval mode and back
    finally:
        model.eval()


def test_predict_palindrome(palindrome_run) -> None:
    model = load_model(palindrome_run.final_checkpoint)
    for digits in ([1, 2, 3, 4, 5], [0, 0, 7, 0, 0], "90210"):
        digit, probabilities = predict_palindrome(model, digits, "one_hot")
        first = int(digits[0])
        assert digit == first
        assert len(probabilities) == 10 and sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert max(probabilities) == probabilities[first]
    for bad in ([1, 2, 10, 4, 5], [1, -1], [], "12a45", [1.5, 2]):
        with pytest.raises(ValueError, match="digits"):
            predict_palindrome(model, bad, "one_hot")
