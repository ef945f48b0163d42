"""The X-ray of a model: every unit's gates on one input, units that track a text feature, and the
gate-saturation scatter of Karpathy, Johnson & Fei-Fei 2015."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from app.api.deps import CacheDep, SessionsDep
from app.api.media import PNG, media
from app.api.openapi import error_responses
from app.core.bounds import DbId
from app.schemas.xray import AnalyzeIn, AnalyzeOut, PackedAnalyzeOut, UnitsIn, UnitsOut
from app.services import gate_saturation, xray
from app.services.xray_arrays import NPZ

router = APIRouter(tags=["analysis"])

TEXT = Query(min_length=1, max_length=4000, description="default: the job's validation text")
DIGITS = Query(pattern=r"^[0-9]+$", max_length=1000, description="default: 256 palindromes")
NPZ_ANSWER = media(
    NPZ,
    "JSON with encoding json or base64; with npz, numpy's .npz (a zip, uncompressed): `answer.json` (the "
    "base64 answer, each string the name of its array's member) and a little-endian float32 .npy per array",
)


@router.post(
    "/analyze",
    response_model=AnalyzeOut | PackedAnalyzeOut,
    responses=error_responses(404, 409) | NPZ_ANSWER,
)
async def analyze(body: Annotated[AnalyzeIn, Body()], sessions: SessionsDep, cache: CacheDep) -> Response:
    """One forward pass over `text` (a text model) or `digits` (a palindrome model), keeping at every
    position each chosen unit's gates i, f, g, o, cell c and output h (the RNN: h; the Phased LSTM
    also k, its time gate), what the model predicted there, and each gate's saturation. 409 for the
    other kind of input; 422 names characters outside the vocabulary, a layer or unit out of range,
    or an input over the budget (positions x units x layers). `"encoding": "base64"` answers every
    series and per-position array as base64 of little-endian float32, for clients that want arrays;
    `"encoding": "npz"` answers them as the .npy members of an application/x-npz zip, beside
    `answer.json`."""
    answer = await xray.analyze(sessions, cache, body)
    return Response(answer.content, media_type=answer.media_type)


@router.post("/analyze/units", response_model=UnitsOut, responses=error_responses(404, 409))
async def analyze_units(body: Annotated[UnitsIn, Body()], sessions: SessionsDep, cache: CacheDep) -> UnitsOut:
    """The units of one layer of a text model ranked by |Pearson r| between their cell (or output)
    and a feature of `text`: a built-in one or the characters a `regex` matches."""
    return await xray.rank_units(sessions, cache, body)


@router.get(
    "/checkpoints/{checkpoint_id}/gate-saturation.png",
    response_class=Response,
    responses=error_responses(404, 409) | PNG,
)
async def checkpoint_gate_saturation(
    checkpoint_id: DbId,
    sessions: SessionsDep,
    cache: CacheDep,
    text: Annotated[str | None, TEXT] = None,
    digits: Annotated[str | None, DIGITS] = None,
) -> Response:
    """Per unit, the fraction of steps its i, f and o gates spend below 0.1 against above 0.9, one
    panel per layer (Karpathy, Johnson & Fei-Fei 2015, figure 3)."""
    image = await gate_saturation.plot(sessions, cache, checkpoint_id=checkpoint_id, text=text, digits=digits)
    return Response(image, media_type="image/png")


@router.get(
    "/jobs/{job_id}/gate-saturation.png", response_class=Response, responses=error_responses(404, 409) | PNG
)
async def job_gate_saturation(
    job_id: DbId,
    sessions: SessionsDep,
    cache: CacheDep,
    text: Annotated[str | None, TEXT] = None,
    digits: Annotated[str | None, DIGITS] = None,
) -> Response:
    """The same for the job's latest checkpoint."""
    image = await gate_saturation.plot(sessions, cache, job_id=job_id, text=text, digits=digits)
    return Response(image, media_type="image/png")
