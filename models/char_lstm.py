"""Character-level LSTM language model (Karpathy's char-rnn, in PyTorch).

Text generation is the one task where throughput matters more than seeing every equation, so this
model uses the fused `nn.LSTM` kernel (cuDNN on CUDA) instead of the hand-written cell in lstm.py.
"""

from __future__ import annotations

import torch
from torch import nn

from models.init import check_init, init_lstm_

LSTMState = tuple[torch.Tensor, torch.Tensor]


class CharLSTM(nn.Module):
    """Next-character logits: embedding -> `num_layers` stacked LSTM layers -> linear head."""

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = 64,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        init: str = "default",
        chrono_t_max: int | None = None,
    ) -> None:
        """`init` and `chrono_t_max` (models/init.py) apply to every LSTM layer."""
        check_init("char_lstm", init, chrono_t_max)
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        # nn.LSTM only applies dropout between layers (and warns if asked to with a single layer).
        self.lstm = nn.LSTM(
            embedding_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)
        # Forget-gate bias 1 (Jozefowicz et al. 2015): the cell starts out remembering, which speeds
        # up learning of long-range structure. nn.LSTM has two biases per layer, gate order
        # (i, f, g, o), so the forget slice is [H:2H] of bias_ih (bias_hh stays at its default).
        with torch.no_grad():
            for layer in range(num_layers):
                getattr(self.lstm, f"bias_ih_l{layer}")[hidden_size : 2 * hidden_size].fill_(1.0)
        # After the default draws (which stay as they were), layer by layer.
        for layer in range(num_layers):
            init_lstm_(
                init,
                getattr(self.lstm, f"weight_hh_l{layer}"),
                getattr(self.lstm, f"bias_ih_l{layer}"),
                hidden_size,
                chrono_t_max,
                bias_hh=getattr(self.lstm, f"bias_hh_l{layer}"),
            )

    def forward(self, inputs: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """inputs: long (B, T) character ids; state: (h, c) each (L, B, H) or None for zeros."""
        x = self.embedding(inputs)  # (B, T, E)
        out, state = self.lstm(x, state)  # (B, T, H), ((L, B, H), (L, B, H))
        return self.head(out), state  # (B, T, V)
