"""Training configurations: the one shape shared by the training loop, the database and the API.

The API's `POST /train` body is these models (plus service-only fields such as `dataset_id`),
so a config stored with a job is exactly what the loop ran. Every field has bounds so a bad
value is rejected where it enters, with the field named, never deep inside a training step.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# The least sampling temperature above 0 (greedy): logits divided by less can overflow float32 to inf,
# and a softmax over infinities is NaN. Anything this cold already samples like argmax.
MIN_TEMPERATURE = 1e-4

# Initialisations (models/init.py applies them), and which of them each model accepts.
LstmInit = Literal["default", "chrono", "orthogonal", "chrono_orthogonal"]
PalindromeInit = Literal["default", "chrono", "orthogonal", "chrono_orthogonal", "identity"]
INITS: dict[str, tuple[str, ...]] = {
    "rnn": ("default", "identity", "orthogonal"),
    "lstm": ("default", "chrono", "orthogonal", "chrono_orthogonal"),
    "phased_lstm": ("default", "chrono", "orthogonal", "chrono_orthogonal"),
    "char_lstm": ("default", "chrono", "orthogonal", "chrono_orthogonal"),
}
INIT_DESCRIPTION = (
    "initialisation of the recurrent weights and gate biases. default: the model's own (uniform "
    "+-1/sqrt(H), LSTM forget-gate bias 1). chrono (LSTMs; Tallec & Ollivier 2018, 'Can recurrent "
    "neural networks warp time?'): forget-gate bias log(U(1, T_max - 1)), input-gate bias its "
    "negative, T_max = chrono_t_max. orthogonal: every gate's H x H recurrent block a random "
    "orthogonal matrix (Saxe, McClelland & Ganguli 2014). chrono_orthogonal: both. identity (rnn "
    "only; Le, Jaitly & Hinton 2015, IRNN): recurrent matrix I and bias 0. "
    "rnn accepts default, identity, orthogonal; lstm, phased_lstm and char_lstm accept default, "
    "chrono, orthogonal, chrono_orthogonal"
)
CHRONO_T_MAX_DESCRIPTION = (
    "chrono's T_max, the longest time dependency expected, in steps; default the input length "
    "(palindrome) or seq_length (text). Ignored unless init is chrono or chrono_orthogonal"
)


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
    lr_schedule: Literal["step", "cosine"] = Field(
        "step",
        description=(
            "step: lr *= lr_decay every lr_decay_every steps. cosine: lr follows half a cosine from "
            "learning_rate to 0 at train_steps (lr_decay is then unused). See models/schedule.py"
        ),
    )
    warmup_steps: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="steps over which lr rises linearly from learning_rate/warmup_steps",
    )
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
    chrono_t_max: int | None = Field(None, ge=2, le=1_000_000, description=CHRONO_T_MAX_DESCRIPTION)


class PalindromeConfig(TrainingConfig):
    """Predict the last digit of a palindrome from the `input_length` digits before it."""

    task: Literal["palindrome"] = "palindrome"
    model: Literal["rnn", "lstm", "phased_lstm"] = "lstm"
    input_length: int = Field(10, ge=1, le=1000)
    hidden_size: int = Field(128, ge=1, le=4096)
    # one_hot: 10-dim vectors (default); scalar: the raw digit as one float (the course's input_dim=1).
    input_encoding: Literal["one_hot", "scalar"] = "one_hot"
    eval_size: int = Field(1000, ge=1000, le=100_000, description="size of the fixed held-out set")
    # After `model`: the validator reads it.
    init: PalindromeInit = Field("default", description=INIT_DESCRIPTION)
    # A curriculum over length (Bengio et al. 2009; Zaremba & Sutskever 2014): training batches start
    # at curriculum_start digits, and after every curriculum_window steps whose training accuracy
    # (over all their examples) reaches curriculum_threshold the length grows by curriculum_step, up
    # to input_length. Evaluation always uses input_length.
    curriculum_start: int | None = Field(
        None, ge=1, le=1000, description="first training length of the curriculum; null: no curriculum"
    )
    curriculum_step: int = Field(5, ge=1, le=1000, description="digits the curriculum adds at each promotion")
    curriculum_threshold: float = Field(
        0.95, gt=0, le=1, description="training accuracy over a window that promotes to a longer length"
    )
    curriculum_window: int = Field(
        50, ge=1, le=100_000, description="training steps per curriculum check (their mean accuracy decides)"
    )

    @field_validator("init")
    @classmethod
    def _init_fits_the_model(cls, init: str, info: ValidationInfo) -> str:
        model = info.data.get("model")  # absent when `model` itself was invalid
        if model is not None and init not in INITS[model]:
            raise ValueError(
                f"init {init!r} does not apply to the {model} model; it accepts {', '.join(INITS[model])}"
            )
        return init

    @field_validator("curriculum_start")
    @classmethod
    def _start_within_input_length(cls, start: int | None, info: ValidationInfo) -> int | None:
        input_length = info.data.get("input_length")
        if start is not None and input_length is not None and start > input_length:
            raise ValueError(
                f"the curriculum starts at {start} digits, longer than input_length={input_length}"
            )
        return start


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
    init: LstmInit = Field("default", description=INIT_DESCRIPTION)
    precision: Literal["float32", "bfloat16"] = Field(
        "float32",
        description=(
            "the training step's arithmetic. bfloat16: the forward pass under torch.autocast to bfloat16 "
            "(weights, optimizer state and gradients stay float32; evaluation and generation run in "
            "float32): 2-4x the characters a second on CPUs with AVX512-BF16 or AMX and on recent GPUs, "
            "slower elsewhere"
        ),
    )
    carry_state: bool = Field(
        False,
        description=(
            "truncated backpropagation through time, as char-rnn trains: the training split is read as "
            "batch_size contiguous streams, seq_length characters a step, and each batch starts from the "
            "state the one before ended in (the gradient stops at the batch boundary). false: random "
            "windows, each from a zero state"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _no_curriculum(cls, values: Any) -> Any:
        # Said here, not left to extra="forbid": "extra inputs are not permitted" would not say why.
        if isinstance(values, dict):
            given = sorted(k for k in values if isinstance(k, str) and k.startswith("curriculum_"))
            if given:
                raise ValueError(
                    f"{', '.join(given)}: the curriculum applies to palindrome jobs only "
                    "(it grows the palindrome length); a text job has none"
                )
        return values


TaskConfig = Annotated[PalindromeConfig | TextConfig, Field(discriminator="task")]
