"""Text corpora: upload (size-limited, UTF-8 only), list, inspect."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message

from app.api.deps import SessionDep, SettingsDep
from app.api.openapi import error_responses
from app.core.bounds import DbId
from app.core.errors import DatasetTooLarge
from app.schemas.resources import DatasetOut, DatasetSummary
from app.services import datasets

# Room for the multipart framing and the other form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class SizeLimitedRoute(APIRoute):
    """Refuses a body over the upload limit before reading it: by Content-Length, then while streaming."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited_handler(request: Request) -> Response:
            limit = request.app.state.settings.max_upload_bytes
            if request.method != "POST":
                return await handler(request)
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
                raise DatasetTooLarge(limit)
            received = 0
            receive = request.receive

            async def counting_receive() -> Message:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > limit + MULTIPART_OVERHEAD:
                    raise DatasetTooLarge(limit)
                return message

            # FastAPI turns an error raised while it parses the form into its own 400 response.
            try:
                response = await handler(Request(request.scope, counting_receive))
            except HTTPException:
                if received > limit + MULTIPART_OVERHEAD:
                    raise DatasetTooLarge(limit) from None
                raise
            if received > limit + MULTIPART_OVERHEAD:
                raise DatasetTooLarge(limit)
            return response

        return limited_handler


router = APIRouter(prefix="/datasets", tags=["datasets"], route_class=SizeLimitedRoute)


@router.post("", status_code=201, response_model=DatasetOut, responses=error_responses(413))
def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile, File(description="a UTF-8 .txt file")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    strip_gutenberg: Annotated[bool, Form(description="drop Project Gutenberg header and licence")] = False,
) -> DatasetOut:
    raw = datasets.read_limited(file.file, settings.max_upload_bytes)
    dataset = datasets.create_dataset(
        session, name=name or file.filename or "upload", raw=raw, strip_gutenberg=strip_gutenberg
    )
    response.headers["Location"] = f"/datasets/{dataset.id}"
    return datasets.dataset_out(dataset)


@router.get("", response_model=list[DatasetSummary])
def list_datasets(session: SessionDep) -> list[DatasetSummary]:
    return datasets.list_datasets(session)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=error_responses(404))
def get_dataset(dataset_id: DbId, session: SessionDep) -> DatasetOut:
    return datasets.dataset_out(datasets.get_dataset(session, dataset_id))
