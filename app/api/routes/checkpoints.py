"""Checkpoint metadata and downloads."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import SessionDep
from app.api.media import attachment
from app.api.openapi import error_responses
from app.core.bounds import DbId
from app.schemas.resources import CheckpointOut
from app.services import checkpoints

router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])


@router.get("/{checkpoint_id}", response_model=CheckpointOut, responses=error_responses(404))
def get_checkpoint(checkpoint_id: DbId, session: SessionDep) -> CheckpointOut:
    return CheckpointOut.model_validate(checkpoints.get_checkpoint(session, checkpoint_id))


@router.get(
    "/{checkpoint_id}/file",
    response_class=Response,
    responses=error_responses(404) | {200: {"content": {"application/octet-stream": {}}}},
)
def download_checkpoint(checkpoint_id: DbId, session: SessionDep) -> Response:
    """The checkpoint dict as a `.pt` file (`torch.load(path, weights_only=True)` reads it)."""
    row = checkpoints.get_checkpoint(session, checkpoint_id, with_data=True)
    filename = f"rnnlab-job{row.job_id}-step{row.step}-ckpt{row.id}.pt"
    return attachment(row.data, "application/octet-stream", filename)
