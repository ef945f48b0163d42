"""Training configurations: the one shape shared by the training loop, the database and the API.

The API's `POST /train` body is these models (plus service-only fields such as `dataset_id`),
so a config stored with a job is exactly what the loop ran. Every field has bounds so a bad
value is rejected where it enters, with the field named, never deep inside a training step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The least sampling temperature above 0 (greedy): logits divided by less can overflow float32 to inf,
# and a softmax over infinities is NaN. Anything this cold already samples like argmax.
MIN_TEMPERATURE = 1e-4


class TrainingConfig(BaseModel):
    """Fields every task shares: optimisation, schedule, intervals, random seed and device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # rmsprop is the course default; sgd uses `momentum`.
    optimizer: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum; ignored by rmsprop and adam")
    # Step decay: lr *= lr_decay every lr_decay_every steps (1.0 disables it).
    lr_decay: float = Field(1.0, gt=0, le=1)
    lr_decay_every: int = Field(5000, ge=1, le=1_000_000)
    batch_size: int = Field(128, ge=1, le=4096)
    train_steps: int = Field(1000, ge=1, le=1_000_000)
    # Clip the global gradient norm: RNN gradients explode on long sequences.
    max_norm: float = Field(10.0, gt=0, le=1e6)
    log_every: int = Field(10, ge=1, le=1_000_000, description="steps between training-metric records")
    eval_every: int = Field(100, ge=1, le=1_000_000, description="steps between validation passes")
    checkpoint_every: int = Field(500, ge=1, le=1_000_000, description="steps between checkpoints")
    # The run's random seed (initial weights, batches, dropout masks). Elsewhere in models/ a random
    # seed is `random_seed` and `seed_text` is the text a generation continues; this field keeps the
    # name `seed` because it is a field of the `POST /train` body and of every stored job config, and
    # the HTTP API must not change (where `/generate` uses `seed` for the seed text). The training
    # command line calls it `--random-seed`.
    seed: int = Field(0, ge=0, le=2**32 - 1)
    # auto picks CUDA when it is available at run time, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"


class PalindromeConfig(TrainingConfig):
    """Predict the last digit of a palindrome from the `input_length` digits before it."""

    task: Literal["palindrome"] = "palindrome"
    model: Literal["rnn", "lstm", "phased_lstm"] = "lstm"
    input_length: int = Field(10, ge=1, le=1000)
    hidden_size: int = Field(128, ge=1, le=4096)
    # one_hot: 10-dim vectors (default); scalar: the raw digit as one float (the course's input_dim=1).
    input_encoding: Literal["one_hot", "scalar"] = "one_hot"
    eval_size: int = Field(1000, ge=1000, le=100_000, description="size of the fixed held-out set")


class TextConfig(TrainingConfig):
    """Next-character prediction on a corpus with a multi-layer character LSTM."""

    task: Literal["text"] = "text"
    model: Literal["char_lstm"] = "char_lstm"
    hidden_size: int = Field(128, ge=1, le=4096)
    num_layers: int = Field(2, ge=1, le=8)
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between LSTM layers")
    embedding_size: int = Field(64, ge=1, le=4096)
    seq_length: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=4096)
    learning_rate: float = Field(2e-3, gt=0, le=10)
    lr_decay: float = Field(0.96, gt=0, le=1)
    lr_decay_every: int = Field(5000, ge=1, le=1_000_000)
    max_norm: float = Field(5.0, gt=0, le=1e6)
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    sample_every: int = Field(500, ge=1, le=1_000_000, description="steps between training-time samples")
    sample_length: int = Field(100, ge=1, le=10_000)
    sample_temperature: float = Field(0.8, ge=MIN_TEMPERATURE, le=10)


TaskConfig = Annotated[PalindromeConfig | TextConfig, Field(discriminator="task")]
