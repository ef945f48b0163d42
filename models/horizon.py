"""The memory horizon of a text model: how far back a prediction still depends on its input.

For a character model, ||d log p(x_{t+1} | x_1..x_t) / d e(x_{t-k})|| for k = 0..K, where e(x) is
the input embedding of a character and k = 0 is the last character read before the prediction:
how strongly the log-probability of the next character moves with the embedding k characters back,
averaged over positions of a text. It is the text model's counterpart of `models/gradient_flow.py`
(which follows dL/dh(t) of a palindrome model): a vanilla-RNN-like model falls off within a few
characters, an LSTM whose forget gates stay open keeps a gradient over dozens.

How, cheaply: B windows of K + 2 characters are taken from the text, evenly spaced; a window's first
K + 1 characters are the input and its last one the character predicted after them. One forward
pass over the (B, K + 1) batch, then one backward pass of the SUM over rows of the log-probability
at each window's last position: the rows never mix (no batch norm, dropout off in eval mode), so
the gradient of the sum with respect to row b's embeddings is the gradient of row b's own log p.
The per-position norm over the embedding dimension is read off once per row and averaged over rows,
so B positions cost one (B, K + 1) forward and backward pass instead of B of them. The state starts
at zero at each window's first character, so k is bounded by the window: K is the horizon looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.horizon_limits import DEFAULT_LAG, DEFAULT_WINDOWS, MAX_LAG, MAX_WINDOWS


@dataclass(frozen=True)
class Horizon:
    """`mean_norm[k]`: the mean over `windows` positions of ||d log p / d e(x_{t-k})||, k = 0..K."""

    k: list[int]
    mean_norm: list[float]
    windows: int
    mean_log_prob: float  # of the predicted characters, in nats: what the gradients are of


def window_offsets(n: int, max_lag: int, windows: int) -> list[int]:
    """Where `windows` windows of `max_lag + 2` characters start in a text of `n` ids: evenly spread
    from the start to the end, distinct (fewer when the text has fewer starts), the same every time."""
    check_lag(max_lag)
    if not 1 <= windows <= MAX_WINDOWS:
        raise ValueError(f"windows must be in [1, {MAX_WINDOWS}], got {windows}")
    starts = n - (max_lag + 2) + 1  # how many windows fit
    if starts < 1:
        raise ValueError(f"the text has {n} characters, fewer than max_lag + 2 = {max_lag + 2}")
    if starts <= windows:
        return list(range(starts))
    return sorted({round(i * (starts - 1) / (windows - 1)) for i in range(windows)} if windows > 1 else {0})


def check_lag(max_lag: int) -> None:
    if not 0 <= max_lag <= MAX_LAG:
        raise ValueError(f"max_lag must be in [0, {MAX_LAG}], got {max_lag}")


def memory_horizon(
    model: nn.Module, ids: torch.Tensor, *, max_lag: int = DEFAULT_LAG, windows: int = DEFAULT_WINDOWS
) -> Horizon:
    """The memory horizon of `model` (a text model with an `embedding` module: char_lstm) on `ids`,
    a long (N,) tensor of character ids of its vocabulary; see the module docstring.

    Runs in eval mode (dropout off, which also keeps the rows independent), then restores the
    model's mode; parameter gradients are left untouched.
    """
    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, nn.Embedding):
        raise ValueError(
            f"{type(model).__name__} has no input embedding: the memory horizon is for text models"
        )
    offsets = window_offsets(len(ids), max_lag, windows)
    device = embedding.weight.device
    span = torch.arange(max_lag + 2)
    windows_ids = ids[torch.tensor(offsets)[:, None] + span].to(device)  # (B, K + 2)
    inputs, targets = windows_ids[:, :-1], windows_ids[:, -1]  # (B, K + 1), (B,)

    captured: list[torch.Tensor] = []
    hook = embedding.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        # cuDNN's RNN backward refuses eval mode; the native kernels compute the same gradient.
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits, _ = model(inputs)  # (B, K + 1, V)
            log_p = logits[:, -1].float().log_softmax(-1).gather(1, targets[:, None])  # (B, 1)
            # autograd.grad against the embedding output: d(sum_b log p_b)/d e_b is row b's own.
            (grad,) = torch.autograd.grad(log_p.sum(), captured[0])  # (B, K + 1, E)
    finally:
        hook.remove()
        model.train(was_training)
    norms = torch.linalg.vector_norm(grad.float(), dim=-1).mean(0)  # (K + 1,), position 0 first
    return Horizon(
        k=list(range(max_lag + 1)),
        mean_norm=norms.flip(0).tolist(),  # k = 0 is the last input position
        windows=len(offsets),
        mean_log_prob=log_p.mean().item(),
    )
