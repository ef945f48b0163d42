"""Query parameters and answers of the analysis endpoints: gradient flow, the memory horizon and the
Phased LSTM time gate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.horizon_limits import DEFAULT_LAG, DEFAULT_WINDOWS, MAX_LAG, MAX_WINDOWS

# The widest t range and the most points one request may ask for: a figure, not a data dump.
MAX_TIME_SPAN = 1e6
MAX_POINTS = 10_000


class TimeGateParams(BaseModel):
    """One unit's time-gate parameters and the t range to evaluate k(t) on."""

    model_config = ConfigDict(extra="forbid")

    # Bounded below: a subnormal period overflows (t - shift) / tau to inf and k(t) to NaN (not JSON).
    tau: float = Field(10.0, ge=1e-6, le=MAX_TIME_SPAN, description="period")
    shift: float = Field(0.0, ge=-MAX_TIME_SPAN, le=MAX_TIME_SPAN, description="phase shift s")
    r_on: float = Field(0.05, gt=0, lt=1, description="fraction of the period the gate is open")
    alpha: float = Field(0.0, ge=0, le=1, description="closed-phase leak (the paper's 1e-3 in training)")
    t_start: float = Field(0.0, ge=-MAX_TIME_SPAN, le=MAX_TIME_SPAN)
    t_end: float = Field(30.0, ge=-MAX_TIME_SPAN, le=MAX_TIME_SPAN)
    points: int = Field(1000, ge=2, le=MAX_POINTS, description="evenly spaced t from t_start to t_end")

    @field_validator("t_end")
    @classmethod
    def _after_start(cls, t_end: float, info: ValidationInfo) -> float:
        # A field validator (not a model one) so the error's loc names t_end.
        t_start = info.data.get("t_start")
        if t_start is not None and t_end <= t_start:
            raise ValueError(f"must be greater than t_start ({t_start:g})")
        return t_end


class TimeGateOut(BaseModel):
    t: list[float]
    phi: list[float] = Field(description="phase in the cycle, ((t - shift) mod tau) / tau")
    k: list[float] = Field(description="the gate's openness")


GradientFlowAt = Literal["checkpoint", "init"]


class GradientFlowOut(BaseModel):
    job_id: int
    model: str
    input_length: int
    at: GradientFlowAt
    checkpoint_id: int | None = Field(description="the checkpoint measured; null at init")
    step: int = Field(description="the training step of the weights measured; 0 at init")
    batch_size: int
    t: list[int] = Field(description="1..input_length")
    grad_norm: list[float] = Field(description="||dL/dh(t)|| for the last-step loss")


# The memory horizon's query limits (models/horizon.py has the lag and window bounds).
MAX_HORIZON_TEXT = 4_000  # characters of a text in the query: a URL, as GET /generate's prompt
MAX_HORIZON_CHECKPOINTS = 8  # curves on one figure (checkpoints of a job, or jobs of an experiment)


class MemoryHorizonParams(BaseModel):
    """Which text, how far back and over how many positions. Not `extra="forbid"`: the routes take the
    checkpoint(s) as parameters of their own, which a forbidding query model would count as extra."""

    max_lag: int = Field(
        DEFAULT_LAG, ge=0, le=MAX_LAG, description="K: lags k = 0..K, the characters looked back over"
    )
    windows: int = Field(
        DEFAULT_WINDOWS,
        ge=1,
        le=MAX_WINDOWS,
        description="positions averaged over: windows of K + 2 characters, evenly spaced over the text",
    )
    text: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_HORIZON_TEXT,
        description="the text to measure on (at least K + 2 characters of the model's vocabulary); "
        "default: the job's validation split",
    )


HorizonText = Literal["validation", "query"]


class MemoryHorizonOut(BaseModel):
    job_id: int
    model: str
    checkpoint_id: int
    step: int = Field(description="the training step of the weights measured")
    text: HorizonText = Field(description="the job's validation split, or the text given in the query")
    text_length: int = Field(description="characters of that text")
    max_lag: int
    windows: int = Field(description="positions averaged over (fewer than asked when the text is short)")
    k: list[int] = Field(description="0..max_lag; k = 0 is the last character read before the prediction")
    mean_norm: list[float] = Field(
        description="mean over positions of ||d log p(next char) / d embedding(k characters back)||"
    )
    mean_log_prob: float = Field(description="mean log p of the predicted characters, in nats")
