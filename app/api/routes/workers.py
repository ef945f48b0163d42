"""The workers: what each consumes and runs, and whether it is alive (what Flower's table shows)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SessionDep, SettingsDep
from app.schemas.resources import WorkerOut
from app.services import workers

router = APIRouter(tags=["workers"])


@router.get("/workers", response_model=list[WorkerOut])
def list_workers(session: SessionDep, settings: SettingsDep) -> list[WorkerOut]:
    """Every worker seen lately: live ones first, then dead ones until their rows are pruned."""
    return workers.list_workers(session, lease_seconds=settings.lease_seconds)
