"""Truncated BPTT (`carry_state`): char-rnn's contiguous training streams, the state carried from one
batch to the next, and a resume that stays bitwise identical."""

from __future__ import annotations

import pytest
import torch

from models.config import TextConfig
from models.corpus import CorpusError
from models.data import make_data
from models.registry import build_model
from models.streams import TrainStreams
from models.tasks import make_task
from models.train import make_optimizer, train, train_step
from tests.models.test_train import _resume_equivalence

CPU = torch.device("cpu")


def test_each_row_continues_the_row_before_and_a_new_pass_starts_from_zero_state() -> None:
    ids = torch.arange(101)  # targets are inputs shifted by one, so ids make the layout visible
    streams = TrainStreams(ids, batch_size=4, seq_length=10)  # 4 streams of 25: 2 windows a pass
    assert streams.windows == 2
    first_inputs, first_targets = streams.next_batch(CPU)
    assert first_inputs[:, 0].tolist() == [0, 25, 50, 75]  # row b reads stream b
    assert torch.equal(first_targets, first_inputs + 1)
    streams.state = (torch.ones(1, 4, 3), torch.ones(1, 4, 3))
    second_inputs, _ = streams.next_batch(CPU)
    assert torch.equal(second_inputs, first_inputs + 10)  # the next 10 characters of every stream
    assert streams.state is not None  # kept within a pass
    third_inputs, _ = streams.next_batch(CPU)  # the streams ran out: the first window again, no state
    assert torch.equal(third_inputs, first_inputs) and streams.state is None


def test_a_corpus_too_short_for_the_streams_is_refused_naming_the_fields() -> None:
    with pytest.raises(CorpusError, match="batch_size=8 streams of 12 characters, fewer than seq_length=20"):
        TrainStreams(torch.arange(100), batch_size=8, seq_length=20)


def test_each_step_starts_from_the_state_the_step_before_ended_in(small_text: str) -> None:
    """What the loop does with the task, step by step: the first batch starts from zeros, every later
    one from the (detached) final state of the one before."""
    config = TextConfig(
        train_steps=3, hidden_size=8, embedding_size=4, num_layers=1, seq_length=5, batch_size=2,
        carry_state=True, device="cpu",
    )  # fmt: skip
    data = make_data(config, small_text)
    task = make_task(config, data)
    torch.manual_seed(0)
    model = build_model(task.architecture)
    optimizer = make_optimizer(config, model.parameters())
    generator = torch.Generator().manual_seed(0)
    started, ended = [], []
    for _ in range(3):
        inputs, targets = task.train_batch(generator, CPU)
        start = task.train_state(CPU)
        *_, final = train_step(model, optimizer, inputs, targets, 5.0, False, state=start)
        assert not final[0].requires_grad  # detached: the gradient stops at the batch boundary
        task.keep_train_state(final)
        started.append(start)
        ended.append(final)
    assert started[0] is None
    for start, end in zip(started[1:], ended[:-1], strict=True):
        assert all(a is b for a, b in zip(start, end, strict=True))  # the very tensors, not copies


def test_carry_state_changes_training_and_resume_is_bitwise_identical(
    make_text_config, small_text: str
) -> None:
    config = make_text_config(carry_state=True, sample_every=4)
    data = make_data(config, small_text)
    carried = train(config.model_copy(update={"train_steps": 6}), data).final_checkpoint
    windows = train(config.model_copy(update={"train_steps": 6, "carry_state": False}), data).final_checkpoint
    assert any(not torch.equal(carried["model"][k], windows["model"][k]) for k in carried["model"])
    assert carried["task_state"]["streams"]["position"] > 0
    _resume_equivalence(config, data, n=8)


def test_a_text_job_defaults_to_random_windows() -> None:
    assert TextConfig().carry_state is False
