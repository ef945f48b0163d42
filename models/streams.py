"""char-rnn's training batches for truncated backpropagation through time (`carry_state`).

The training split is cut into `batch_size` contiguous streams, read `seq_length` characters at a
time, and the LSTM state at the end of one batch is where the next batch starts (detached, so the
gradient still stops at the batch boundary). The model thus trains with the long context it has
when it is evaluated (models.train's validation carries the state the same way) and when it
generates. Random windows from a zero state, the other way, only ever show `seq_length` characters
of context.

When the streams run out, reading starts again at their beginning from a zero state. The position
and the carried state are the task's training state: checkpoints keep them, so a resumed run reads
the same batches with the same state and stays bitwise identical.
"""

from __future__ import annotations

from typing import Any

import torch

from models.corpus import CorpusError

State = Any  # a model's recurrent state: (h, c) for the LSTMs


class TrainStreams:
    """The next batch of the streams and the state it starts from."""

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_length: int) -> None:
        per_stream = (len(ids) - 1) // batch_size
        if per_stream < seq_length:
            raise CorpusError(
                f"carry_state cuts the training split ({len(ids)} characters) into batch_size={batch_size} "
                f"streams of {per_stream} characters, fewer than seq_length={seq_length}; use a longer "
                "corpus or a smaller batch_size or seq_length"
            )
        n = batch_size * per_stream
        self.inputs = ids[:n].view(batch_size, per_stream)  # (B, P)
        self.targets = ids[1 : n + 1].view(batch_size, per_stream)  # (B, P), shifted by one
        self.seq_length = seq_length
        self.windows = per_stream // seq_length  # batches per pass over the streams
        self.position = 0  # the next window
        self.state: State = None

    def next_batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The next window of every stream, (B, T) inputs and targets; a new pass starts from zero state."""
        if self.position >= self.windows:
            self.position, self.state = 0, None
        window = slice(self.position * self.seq_length, (self.position + 1) * self.seq_length)
        self.position += 1
        return self.inputs[:, window].to(device), self.targets[:, window].to(device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "state": _map(self.state, lambda t: t.detach().to("cpu", copy=True)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # On the CPU as stored; `state_on` moves it to the training device at the next step.
        self.position = int(state["position"])
        self.state = state["state"]

    def state_on(self, device: torch.device) -> State:
        """The state the next batch starts from (None: zeros), on `device`."""
        self.state = _map(self.state, lambda t: t.to(device))
        return self.state


def _map(state: State, fn: Any) -> State:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(_map(s, fn) for s in state)


def detached(state: State) -> State:
    """The state with no autograd history: the gradient of the next batch stops at its first step."""
    return _map(state, torch.Tensor.detach)
