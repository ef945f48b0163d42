"""How the gradient of the loss reaches each hidden state: the vanishing-gradient picture.

For the last-step cross-entropy L of a palindrome batch, ||dL/dh(t)|| for t = 1..T (the norm over
batch and hidden units of the total gradient flowing into h(t), through the recurrence and the
head). For a vanilla RNN it decays fast as t moves away from T; an LSTM keeps it alive much longer.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn


@runtime_checkable
class ExposesHiddenStates(Protocol):
    """A model that hands out every h(t) as an autograd-graph node (RNN, LSTM, PhasedLSTM)."""

    def forward_with_hidden(self, inputs: torch.Tensor) -> tuple[torch.Tensor, Any, list[torch.Tensor]]: ...


def hidden_gradient_norms(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """||dL/dh(t)|| for t = 1..T, L = cross-entropy of the last step's logits against `targets` (B,).

    `model` must offer `forward_with_hidden(inputs) -> (logits, state, [h(1), ..., h(T)])` (RNN, LSTM,
    PhasedLSTM). It runs in the mode it is in (a Phased LSTM leaks only in training mode); parameter
    gradients are left untouched.
    """
    if not isinstance(model, ExposesHiddenStates):
        raise ValueError(f"{type(model).__name__} does not expose its hidden states (no forward_with_hidden)")
    with torch.enable_grad():
        logits, _, hidden = model.forward_with_hidden(inputs)
        loss = F.cross_entropy(logits[:, -1], targets)
        # autograd.grad against the h(t) nodes gives what h.retain_grad() + backward() would put in
        # h.grad, without accumulating into the parameters' .grad.
        grads = torch.autograd.grad(loss, hidden, allow_unused=True, materialize_grads=True)
    return [torch.linalg.vector_norm(g).item() for g in grads]
