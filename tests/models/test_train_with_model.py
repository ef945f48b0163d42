"""train(..., model=...): the caller's model is the one trained, and it must be the config's architecture."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.config import TextConfig
from models.data import make_data
from models.lstm import LSTM
from models.registry import architecture_for, build_model
from models.rnn import RNN
from models.train import train


def test_a_passed_model_is_trained_in_place_like_the_registry_one(make_palindrome_config) -> None:
    config = make_palindrome_config(train_steps=15)
    data = make_data(config)
    torch.manual_seed(config.seed)  # as train() seeds before it builds the registry's model
    model = build_model(architecture_for(config))
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    passed = train(config, data, model=model)
    built = train(config, data)

    trained = model.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial)  # it learned
    for name, weights in passed.final_checkpoint["model"].items():
        assert torch.equal(weights, trained[name]), name  # the checkpoint holds the passed model
        assert torch.equal(weights, built.final_checkpoint["model"][name]), name  # same run


class TorchLSTM(nn.Module):
    """nn.LSTM with a head on every step, in the project's model interface (a foreign class)."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, (h, c) = self.lstm(inputs)  # (B, T, H); each state (1, B, H)
        return self.head(out), (h[0], c[0])


def test_a_foreign_model_with_the_architecture_interface_is_trained(make_palindrome_config, recorder) -> None:
    config = make_palindrome_config(train_steps=10, log_every=5)
    model = TorchLSTM(10, config.hidden_size, 10)
    result = train(config, make_data(config), recorder, model=model)
    assert result.step == 10
    assert set(result.final_checkpoint["model"]) == set(model.state_dict())
    assert [s for s, m in recorder.metrics if "loss" in m] == [5, 10]


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda: LSTM(10, 16), r"W_h: \(64, 16\) in the model, \(128, 32\) expected"),
        (lambda: LSTM(1, 32), r"W_x: \(128, 1\) in the model, \(128, 10\) expected"),
        (lambda: RNN(10, 32), "its class is RNN, the architecture's is LSTM"),
        (
            lambda: TorchLSTM(10, 16, 10),
            r"its state has widths \[16, 16\], the architecture's hidden_size is 32",
        ),
        (lambda: TorchLSTM(10, 32, 7), r"its logits are \(2, 3, 7\), the architecture's are \(2, 3, 10\)"),
        (lambda: TorchLSTM(1, 32, 10), r"it cannot read the architecture's inputs \(2, 3, 10\)"),
    ],
    ids=["hidden size", "input size", "another type", "foreign hidden", "foreign classes", "foreign inputs"],
)
def test_a_model_of_another_architecture_is_rejected(
    make_palindrome_config, make_model, message: str
) -> None:
    config = make_palindrome_config()  # lstm, hidden_size 32, one-hot digits
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=f"does not match the config's architecture: .*{message}"):
        train(config, make_data(config), model=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # left untouched


def test_a_text_model_must_have_the_vocabulary_size(make_text_config, small_text: str) -> None:
    config: TextConfig = make_text_config()
    data = make_data(config, small_text)
    wrong = build_model(architecture_for(config, len(data.vocab) + 1))
    with pytest.raises(ValueError, match=r"head.weight: \(\d+, 32\) in the model"):
        train(config, data, model=wrong)
