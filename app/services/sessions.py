"""Sessions: a text model's state after some text, kept in the database and fed, continued, forked
and clamped (models/decode/state.py has what a state and a clamp are).

Feeding text (`create`'s prompt, `append`) runs `FusedCharLSTM.feed` in a server thread: the same
layer-by-layer arithmetic as the engine's priming, so the state after a prompt and appends is bitwise
the state `/generate` primes for their concatenation. Generating joins the checkpoint's decode batch
with the stored state (no priming) and takes the state after its last character back from it. Each
change starts from the record this process last committed (app/services/session_cache.py), else reads
it (in groups: app/services/session_reader.py), computes, then writes conditioned on the version it
started from (app/services/session_store.py, committed in groups by app/services/session_writer.py):
two requests on one session never interleave; the later one gets 409 and changes nothing.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool

from app.core.db import begin_reading
from app.core.errors import Conflict, InvalidInput, SessionChanged, SessionNotFound, WrongTask
from app.core.settings import Settings
from app.generation.cache import LoadedModel, ModelCache
from app.generation.handle import GenerationRequest
from app.schemas.sessions import (
    MAX_SESSION_CHARACTERS,
    AppendIn,
    AppendOut,
    ClampIn,
    ClampOut,
    SessionGenerateIn,
    SessionGenerateOut,
    SessionIn,
    SessionList,
    SessionOut,
)
from app.services import session_store
from app.services.generation import Sessions, loaded_model, model_name_of, observe_handles
from app.services.session_cache import RecentSessions
from app.services.session_reader import reader_for
from app.services.session_store import SessionRecord
from app.services.session_writer import writer_for

if TYPE_CHECKING:  # torch is imported when the first checkpoint loads, not with the app
    import torch

    from models.decode.state import Clamp, StartState


class SessionEmpty(Conflict):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} has consumed no text yet: append some (or give a prompt) before generating"
        )


@dataclass(frozen=True)
class SessionContext:
    """What a server keeps sessions with: its database, its loaded models (and their decode batches),
    its settings, and the records it changed last (session_cache.py)."""

    sessions: Sessions
    cache: ModelCache
    settings: Settings
    recent: RecentSessions


@lru_cache(maxsize=1024)  # a server sees few tokens, each on every one of its requests
def owner_of(authorization: str | None) -> str:
    """Who a request is, as sessions record it: the SHA-256 of its bearer token ("" without one)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return hashlib.sha256(token.strip().encode()).hexdigest()


# -- state <-> bytes


def encode_state(state: StartState) -> bytes:
    return encode_flat(state.flat)


def encode_flat(flat: torch.Tensor) -> bytes:
    """h | c (a CPU float32 vector) as little-endian float32 bytes: the database gives back bitwise
    what was written. (Numpy, not torch, here and in decode_state: a torch op drops the GIL, and on
    the event loop retaking it from a busy engine thread cost more than the op.)"""
    return bytes(flat.numpy().astype("<f4", copy=False).data)


def decode_state(record: SessionRecord) -> StartState:
    import numpy as np
    import torch

    from models.decode.state import StartState

    # Views made in numpy, then handed to torch: no torch op runs here on the event loop.
    array = np.frombuffer(record.state, dtype="<f4").astype(np.float32)
    h, c = (torch.from_numpy(part) for part in array.reshape(2, record.num_layers, -1))
    return StartState(h, c, clamps_of(record.clamps), stored_flat=torch.from_numpy(array))


def clamps_of(stored: Sequence[dict[str, Any]]) -> tuple[Clamp, ...]:
    from models.decode.state import Clamp

    return tuple(Clamp(int(c["layer"]), int(c["unit"]), float(c["value"]), int(c["steps"])) for c in stored)


def stored_clamps(clamps: Sequence[Clamp]) -> list[dict[str, Any]]:
    return [{"layer": c.layer, "unit": c.unit, "value": c.value, "steps": c.steps} for c in clamps]


def session_out(record: SessionRecord, settings: Settings) -> SessionOut:
    return SessionOut(
        id=record.id,
        checkpoint_id=record.checkpoint_id,
        model=record.model,
        num_layers=record.num_layers,
        hidden_size=record.hidden_size,
        characters=record.characters,
        clamps=[ClampOut(**c) for c in record.clamps],
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        expires_at=record.last_used_at + timedelta(seconds=settings.session_idle_seconds),
    )


# -- the operations


async def _text_model(sessions: Sessions, cache: ModelCache, **reference: Any) -> LoadedModel:
    loaded = await loaded_model(sessions, cache, **reference)
    if loaded.engine is None:
        raise WrongTask(
            f"checkpoint {loaded.checkpoint_id} is a {loaded.task} model: sessions are for text models "
            "(a palindrome model reads its digits whole; use POST /predict)"
        )
    return loaded


def _check_text(loaded: LoadedModel, text: str, field: str) -> None:
    from models.data import UnknownCharacters

    missing = loaded.vocab.missing(text)
    if missing:
        raise InvalidInput(("body", field), str(UnknownCharacters(missing)))


def _check_total(record: SessionRecord, more: int, field: str) -> None:
    if record.characters + more > MAX_SESSION_CHARACTERS:
        raise InvalidInput(
            ("body", field),
            f"the session has consumed {record.characters} characters; {more} more would pass the "
            f"bound of {MAX_SESSION_CHARACTERS:,} per session",
        )


async def _read(ctx: SessionContext, owner: str, session_id: str) -> SessionRecord:
    """The row, read together with the other session reads waiting (session_reader.py), and remembered."""
    reader = reader_for(ctx.sessions)
    record = await reader.get(session_id, owner=owner, idle_s=ctx.settings.session_idle_seconds)
    ctx.recent.put(record)
    return record


async def _save(ctx: SessionContext, record: SessionRecord, **values: Any) -> SessionRecord:
    """The new state, committed together with the other session writes waiting (session_writer.py),
    on disk when answered or within a second (RNNLAB_SESSION_FSYNC)."""
    synced = ctx.settings.session_fsync == "always"
    return await writer_for(ctx.sessions).write(record, synced=synced, **values)


Answer = TypeVar("Answer")
# A change of a session: from the record it starts from, the values to write and what else to answer.
Change = Callable[[SessionRecord], Awaitable[tuple[dict[str, Any], Answer]]]


async def _change(
    ctx: SessionContext, owner: str, session_id: str, change: Change[Answer]
) -> tuple[SessionRecord, Answer]:
    """Run `change` from the session's newest record this process knows (session_cache.py), else from
    a read, and write its values conditioned on that record's version: the record saved, and the
    change's answer. When a remembered record turns out stale (another process changed or deleted the
    session; nothing in this one did), the session is read afresh and the change run again, once: the
    answer is what the change gives from the session as it is. A conflict with a change made in this
    process is the client's (409), as it is from a read."""
    recent = ctx.recent
    record = recent.get(session_id, owner=owner, idle_s=ctx.settings.session_idle_seconds)
    remembered = record is not None
    if record is None:
        record = await _read(ctx, owner, session_id)
    while True:
        values, answer = await change(record)
        try:
            saved = await _save(ctx, record, **values)
        except (SessionChanged, SessionNotFound):
            if not (remembered and recent.holds(record)):
                raise
            recent.forget(session_id)
            remembered = False
            record = await _read(ctx, owner, session_id)
            continue
        recent.put(saved)
        return saved, answer


async def _loaded_for(ctx: SessionContext, record: SessionRecord) -> LoadedModel:
    """The session's own checkpoint: a name it was made with may point elsewhere now, but its state
    belongs to the weights that computed it."""
    return await _text_model(ctx.sessions, ctx.cache, checkpoint_id=record.checkpoint_id, job_id=None)


async def create(ctx: SessionContext, owner: str, body: SessionIn) -> SessionOut:
    """404 unknown model, 409 palindrome model, 422 prompt characters outside the vocabulary, 429 when
    the token holds RNNLAB_MAX_SESSIONS_PER_TOKEN sessions."""
    loaded = await _text_model(
        ctx.sessions, ctx.cache, checkpoint_id=body.checkpoint_id, job_id=body.job_id, model=body.model
    )
    _check_text(loaded, body.prompt, "prompt")
    weights = loaded.engine.weights if loaded.engine is not None else None
    assert weights is not None

    def primed() -> StartState:
        from models.decode.state import StartState

        start = StartState.zero(weights.num_layers, weights.hidden_size)
        if not body.prompt:
            return start
        return weights.feed(loaded.vocab.encode(body.prompt), start)[1]

    state = await run_in_threadpool(primed)
    return await _insert(ctx, owner, loaded.checkpoint_id, body.model, state, len(body.prompt))


async def _insert(
    ctx: SessionContext,
    owner: str,
    checkpoint_id: int,
    model: str | None,
    state: StartState,
    characters: int,
) -> SessionOut:
    settings = ctx.settings

    def insert() -> SessionRecord:
        with ctx.sessions() as session:
            return session_store.create(
                session,
                owner=owner,
                checkpoint_id=checkpoint_id,
                model=model,
                state=encode_state(state),
                num_layers=state.h.shape[0],
                hidden_size=state.h.shape[1],
                characters=characters,
                clamps=stored_clamps(state.clamps),
                idle_s=settings.session_idle_seconds,
                cap=settings.max_sessions_per_token,
            )

    record = await run_in_threadpool(insert)
    ctx.recent.put(record)
    return session_out(record, settings)


async def get(ctx: SessionContext, owner: str, session_id: str) -> SessionOut:
    """Read from the database: another server may have changed it."""
    return session_out(await _read(ctx, owner, session_id), ctx.settings)


async def list_sessions(ctx: SessionContext, owner: str) -> SessionList:
    settings = ctx.settings

    def read() -> Sequence[SessionRecord]:
        with ctx.sessions() as session:
            begin_reading(session)
            return session_store.list_for(session, owner=owner, idle_s=settings.session_idle_seconds)

    return SessionList(sessions=[session_out(r, settings) for r in await run_in_threadpool(read)])


async def delete(ctx: SessionContext, owner: str, session_id: str) -> None:
    def remove() -> None:
        with ctx.sessions() as session:
            session_store.remove(session, session_id, owner=owner)

    try:
        await run_in_threadpool(remove)
    finally:
        ctx.recent.forget(session_id)


def _moved_to(flat: torch.Tensor, clamps: Sequence[Clamp], characters: int) -> dict[str, Any]:
    """The values a change that moved the state writes: its h | c, the clamps still pending, the
    characters consumed in all."""
    return {"state": encode_flat(flat), "characters": characters, "clamps": stored_clamps(clamps)}


async def append(ctx: SessionContext, owner: str, session_id: str, body: AppendIn) -> AppendOut:
    """Feed `text`: its surprisal per character, and the state after it (clamps held as it goes)."""

    async def feed(record: SessionRecord) -> tuple[dict[str, Any], list[float | None]]:
        _check_total(record, len(body.text), "text")
        loaded = await _loaded_for(ctx, record)
        _check_text(loaded, body.text, "text")
        weights = loaded.engine.weights if loaded.engine is not None else None
        assert weights is not None
        start = decode_state(record)

        def fed() -> tuple[list[float | None], StartState]:
            import torch

            ids = loaded.vocab.encode(body.text)
            logits, state = weights.feed(ids, start)
            logprobs = torch.log_softmax(logits.double(), dim=-1).gather(1, ids.view(-1, 1).to(logits.device))
            bits: list[float | None] = [-lp / math.log(2) for lp in logprobs.flatten().tolist()]
            if record.characters == 0:  # nothing came before it: the zero state predicts nothing
                bits[0] = None
            return bits, state

        bits, state = await run_in_threadpool(fed)
        return _moved_to(state.flat, state.clamps, record.characters + len(body.text)), bits

    saved, bits = await _change(ctx, owner, session_id, feed)
    known = [b for b in bits if b is not None]
    return AppendOut(
        session=session_out(saved, ctx.settings),
        tokens=list(body.text),
        surprisal_bits=bits,
        bits_per_character=sum(known) / len(known) if known else None,
    )


async def generate(
    ctx: SessionContext, owner: str, session_id: str, body: SessionGenerateIn
) -> SessionGenerateOut:
    """Continue the state by `length` characters through the checkpoint's decode batch; the state
    after them is the session's."""
    from models.decode.state import after
    from models.decode.stream import Stream

    random_seed = secrets.randbits(32) if body.random_seed is None else body.random_seed

    async def continued(record: SessionRecord) -> tuple[dict[str, Any], str]:
        started_at = perf_counter()
        if record.characters == 0:
            raise SessionEmpty(session_id)
        _check_total(record, body.length, "length")
        loaded = await _loaded_for(ctx, record)
        assert loaded.engine is not None
        # Its batch row made here, on the event loop, while the engine thread steps the others: the
        # join then only copies it (at 32 clients the engine thread is the one that runs out).
        weights = loaded.engine.weights
        start = decode_state(record)
        start = replace(start, row=weights.start_row(start))
        stream = Stream("", body.length, random_seed, body.temperature, body.top_k, body.top_p)
        handle = loaded.engine.submit(GenerationRequest(stream, start=start, keep_state=True))
        try:
            text = await handle.text()
        finally:
            handle.cancel()  # the request went away while it waited: free the slot, change nothing
        observe_handles([handle], started_at, model_name_of(record.model))  # in /generate's metrics
        final: torch.Tensor | None = handle.final_state
        assert final is not None  # a stream of `length` characters without stops always leaves with it
        clamps = after(start.clamps, body.length)
        return _moved_to(final.cpu(), clamps, record.characters + body.length), text

    saved, text = await _change(ctx, owner, session_id, continued)
    return SessionGenerateOut(session=session_out(saved, ctx.settings), text=text, random_seed=random_seed)


async def fork(ctx: SessionContext, owner: str, session_id: str) -> SessionOut:
    """A new session with a copy of this one's state (read from the database: another server may have
    changed it), characters and pending clamps."""
    record = await _read(ctx, owner, session_id)
    state = decode_state(record)
    return await _insert(ctx, owner, record.checkpoint_id, record.model, state, record.characters)


async def clamp(ctx: SessionContext, owner: str, session_id: str, body: ClampIn) -> SessionOut:
    """Hold a cell unit from now for the next `steps` characters (422 naming layer or unit when out
    of the model's range)."""
    from models.decode.limits import MAX_CLAMPS
    from models.decode.state import Clamp

    async def clamped(record: SessionRecord) -> tuple[dict[str, Any], None]:
        for field, value, size in (
            ("layer", body.layer, record.num_layers),
            ("unit", body.unit, record.hidden_size),
        ):
            if value >= size:
                raise InvalidInput(("body", field), f"must be less than {size} for this model, got {value}")
        new = Clamp(body.layer, body.unit, body.value, body.steps)
        try:
            state = decode_state(record).clamped(new)
        except ValueError as exc:  # too many pending
            raise InvalidInput(("body", "unit"), f"{exc} (MAX_CLAMPS = {MAX_CLAMPS})") from exc
        return {"state": encode_state(state), "clamps": stored_clamps(state.clamps)}, None

    saved, _ = await _change(ctx, owner, session_id, clamped)
    return session_out(saved, ctx.settings)
