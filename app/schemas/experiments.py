"""Experiment bodies: a training request plus sweep axes in, a results table out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from app.core.job_status import JobStatus
from app.schemas.training import PalindromeTrainRequest, TextTrainRequest

# queued: no job has started. running: some job is queued or running and some has started or ended.
# Once every job has ended: succeeded (all succeeded), partial (some succeeded, some did not),
# failed (none succeeded, some failed), cancelled (all cancelled).
# Variants (named sets of fields) appear in results and figures as one more axis, named so.
VARIANT_AXIS = "variant"
MAX_VARIANTS = 20
VARIANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$"

ExperimentStatus = Literal["queued", "running", "succeeded", "partial", "failed", "cancelled"]

SWEEP_DESCRIPTION = (
    "axis name -> values; one job per point of their product (the first axis varies slowest). An axis is "
    "any field of the training body except `task`, and must not also be given outside the sweep."
)


VARIANTS_DESCRIPTION = (
    "named recipes, each a set of training fields that differ from the body (e.g. "
    '{"rnn": {"model": "rnn"}, "lstm_adam": {"optimizer": "adam"}, "lstm_course": {}}): one arm per '
    "name, crossed with the sweep's grid. The results, the CSV and the figure show them as the axis "
    f"`{VARIANT_AXIS}`, which varies slowest. At most {MAX_VARIANTS} names of 1 to 40 characters "
    "(letters, digits, _ . + -); a field may not be both in a variant and a sweep axis"
)


class ExperimentFields(BaseModel):
    """What an experiment adds to a training request."""

    name: str | None = Field(None, max_length=200, description="a label for people; need not be unique")
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description=SWEEP_DESCRIPTION)
    variants: dict[str, dict[str, Any]] | None = Field(None, description=VARIANTS_DESCRIPTION)


class PalindromeExperimentRequest(PalindromeTrainRequest, ExperimentFields):
    """A palindrome training body (the base every grid point shares) plus `sweep` and `name`."""


class TextExperimentRequest(TextTrainRequest, ExperimentFields):
    """A text training body (the base every grid point shares) plus `sweep` and `name`."""


ExperimentRequest = Annotated[
    PalindromeExperimentRequest | TextExperimentRequest, Field(discriminator="task")
]
EXPERIMENT_FIELDS = frozenset(ExperimentFields.model_fields)

# Best values over a job's whole validation history, beside its latest ("final") metrics.
BEST_METRICS = ("best_val_loss", "best_val_accuracy")


class ExperimentRow(BaseModel):
    """One grid point: its axis values and its job."""

    params: dict[str, Any] = Field(description="this point's value on each sweep axis")
    job_id: int
    status: JobStatus
    step: int
    final_metrics: dict[str, float] = Field(description="the job's latest value of each metric")
    best_val_loss: float | None = Field(description="lowest val_loss the job recorded")
    best_val_accuracy: float | None = Field(description="highest val_accuracy the job recorded")


class ExperimentSummary(BaseModel):
    id: int
    name: str | None
    task: str
    status: ExperimentStatus
    jobs: int
    counts: dict[str, int] = Field(description="jobs per status, every status present")
    sweep: dict[str, list[Any]] = Field(
        description=f"the axes of the grid; with variants, `{VARIANT_AXIS}` (their names) comes first"
    )
    variants: dict[str, dict[str, Any]] | None = Field(description="the variants' fields, by name")
    created_at: datetime


class ExperimentOut(ExperimentSummary):
    base_config: dict[str, Any] = Field(description="the training fields every job shares (axes left out)")
    results: list[ExperimentRow]


class ExperimentPage(BaseModel):
    items: list[ExperimentSummary]
    total: int
    limit: int
    offset: int
