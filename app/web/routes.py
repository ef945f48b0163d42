"""The dashboard's pages and its static files (no CDN: it works offline).

The pages are shells: the server renders their structure and forms; their scripts fill in the data
from the same JSON API any client uses (sending the token the user typed), so the dashboard has no
privileged path into the database and shows nothing the API would refuse to show. The routes stay
out of the OpenAPI document: they are not part of the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
STATIC_PREFIX = "/ui/static"

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    context |= {"static": STATIC_PREFIX}
    return templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html")


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int) -> HTMLResponse:
    return _page(request, "job.html", job_id=job_id)


@router.get("/ui/experiments", response_class=HTMLResponse)
def experiments_page(request: Request) -> HTMLResponse:
    return _page(request, "experiments.html")


@router.get("/ui/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: int) -> HTMLResponse:
    return _page(request, "experiment.html", experiment_id=experiment_id)


@router.get("/ui/workers", response_class=HTMLResponse)
def workers_page(request: Request) -> HTMLResponse:
    return _page(request, "workers.html")


@router.get("/ui/xray", response_class=HTMLResponse)
def xray_page(request: Request, job: int | None = None) -> HTMLResponse:
    """`?job=ID` fills in the job."""
    return _page(request, "xray.html", job_id=job)


def install_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="dashboard-static")
