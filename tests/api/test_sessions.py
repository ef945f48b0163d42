"""Sessions over HTTP (app/services/sessions.py): a text model's state kept in the database, fed,
continued through the decode batch, forked, clamped; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from app.core.db import sessionmaker_for
from app.core.errors import SessionChanged
from app.core.settings import Settings
from app.core.tables import ModelSession, utcnow
from app.main import create_app
from app.services import session_store
from app.services.session_writer import writer_for
from models.checkpoint import from_bytes, load_model, load_vocabulary
from models.decode.fused import FusedCharLSTM
from models.decode.state import Clamp, StartState
from tests.conftest import API_TOKEN, AUTH, TINY_PALINDROME, TINY_TEXT
from worker.tasks import run_job

PROMPT = "Once upon a time"
MORE = " there was a king"


@pytest.fixture(scope="module")
def trained(client: TestClient, settings: Settings) -> Iterator[dict[str, Any]]:
    """A two-layer text job and a palindrome job, trained in this process."""
    sessions = sessionmaker_for(settings.resolved_database_url)
    text_job = client.post("/train", json=TINY_TEXT | {"num_layers": 2, "hidden_size": 32}).json()
    digits_job = client.post("/train", json=TINY_PALINDROME).json()
    for job in (text_job, digits_job):
        assert run_job(job["id"], sessions=sessions) == "succeeded"
    text_job = client.get(f"/jobs/{text_job['id']}").json()
    ckpt = from_bytes(client.get(f"/checkpoints/{text_job['latest_checkpoint_id']}/file").content)
    yield {
        "checkpoint_id": text_job["latest_checkpoint_id"],
        "job_id": text_job["id"],
        "palindrome_job_id": digits_job["id"],
        "weights": FusedCharLSTM(load_model(ckpt)),
        "vocab": load_vocabulary(ckpt),
    }


def new_session(client: TestClient, trained: dict[str, Any], prompt: str = PROMPT) -> dict[str, Any]:
    response = client.post("/sessions", json={"checkpoint_id": trained["checkpoint_id"], "prompt": prompt})
    assert response.status_code == 201, response.text
    return dict(response.json())


def session_generate(client: TestClient, session_id: str, **params: Any) -> dict[str, Any]:
    response = client.post(f"/sessions/{session_id}/generate", json=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


GEN = {"length": 80, "random_seed": 1234, "temperature": 0.9, "top_k": 12}


def bare_session(db: Any, owner: str, *, cap: int) -> session_store.SessionRecord:
    """A row straight through the store (no model behind it): for the store's own concurrency rules."""
    return session_store.create(
        db,
        owner=owner,
        checkpoint_id=1,
        model=None,
        state=b"\0" * 16,
        num_layers=1,
        hidden_size=2,
        characters=0,
        clamps=[],
        idle_s=3600,
        cap=cap,
    )


@pytest.mark.parametrize("native_decode", [True, False])
def test_generating_from_a_session_equals_generate_with_everything_it_consumed(
    settings: Settings, trained: dict[str, Any], native_decode: bool
) -> None:
    with TestClient(
        create_app(settings.model_copy(update={"native_decode": native_decode})), headers=AUTH
    ) as c:
        session = new_session(c, trained)
        assert c.post(f"/sessions/{session['id']}/append", json={"text": MORE}).status_code == 200
        out = session_generate(c, session["id"], **GEN)
        reference = c.post(
            "/generate", json={"checkpoint_id": trained["checkpoint_id"], "prompt": PROMPT + MORE} | GEN
        ).json()
        (engine,) = c.app.state.model_cache.engines()  # type: ignore[attr-defined]
        assert engine.native is native_decode
    assert out["text"] == reference["text"] and len(out["text"]) == 80
    assert out["random_seed"] == 1234
    assert out["session"]["characters"] == len(PROMPT + MORE) + 80


def test_both_decode_paths_continue_a_session_the_same(settings: Settings, trained: dict[str, Any]) -> None:
    texts = []
    for native_decode in (True, False):
        with TestClient(
            create_app(settings.model_copy(update={"native_decode": native_decode})), headers=AUTH
        ) as c:
            session = new_session(c, trained)
            texts.append(
                [session_generate(c, session["id"], **GEN | {"random_seed": s})["text"] for s in (1, 2, 3)]
            )
    assert texts[0] == texts[1]


def test_append_reports_surprisal_as_score_does(client: TestClient, trained: dict[str, Any]) -> None:
    session = new_session(client, trained)
    response = client.post(f"/sessions/{session['id']}/append", json={"text": MORE})
    assert response.status_code == 200, response.text
    body = response.json()
    scored = client.post(
        "/score", json={"checkpoint_id": trained["checkpoint_id"], "text": PROMPT + MORE}
    ).json()
    want = [-lp / math.log(2) for lp in scored["token_logprobs"][len(PROMPT) :]]
    assert body["tokens"] == list(MORE)
    assert body["surprisal_bits"] == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert body["bits_per_character"] == pytest.approx(sum(want) / len(want), rel=1e-4)
    assert body["session"]["characters"] == len(PROMPT + MORE)
    # A session made with no prompt has no context for its first character.
    empty = new_session(client, trained, prompt="")
    first = client.post(f"/sessions/{empty['id']}/append", json={"text": "Once"}).json()
    assert first["surprisal_bits"][0] is None and all(b is not None for b in first["surprisal_bits"][1:])


def test_a_fork_continues_as_the_original_would(client: TestClient, trained: dict[str, Any]) -> None:
    original = new_session(client, trained)
    session_generate(client, original["id"], length=30, random_seed=5)
    fork = client.post(f"/sessions/{original['id']}/fork", json={})
    assert fork.status_code == 201, fork.text
    forked = fork.json()
    assert forked["id"] != original["id"] and forked["characters"] == len(PROMPT) + 30
    from_fork = session_generate(client, forked["id"], **GEN)
    from_original = session_generate(client, original["id"], **GEN)
    assert from_fork["text"] == from_original["text"]
    # They are two sessions now: the next texts differ with different seeds, and each moves alone.
    assert session_generate(client, forked["id"], length=5, random_seed=1)["session"]["characters"] == (
        len(PROMPT) + 30 + 80 + 5
    )
    assert client.get(f"/sessions/{original['id']}").json()["characters"] == len(PROMPT) + 30 + 80


async def _alone_and_crowded(app: FastAPI, trained: dict[str, Any], session_ids: list[str]) -> list[str]:
    """The first session generates alone; the second (a fork of it) among 31 /generate requests."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH, timeout=120) as c:
        alone = await c.post(f"/sessions/{session_ids[0]}/generate", json=GEN)
        others = [
            c.post(
                "/generate",
                json={"checkpoint_id": trained["checkpoint_id"], "prompt": "The "[: i % 4], "length": 40 + i}
                | {"random_seed": i, "temperature": [0, 0.7, 1.0][i % 3]},
            )
            for i in range(31)
        ]
        responses = await asyncio.gather(
            *others[:15], c.post(f"/sessions/{session_ids[1]}/generate", json=GEN), *others[15:]
        )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [alone.json()["text"], responses[15].json()["text"]]


def test_the_same_text_alone_or_in_a_full_batch(settings: Settings, trained: dict[str, Any]) -> None:
    app = create_app(settings.model_copy(update={"generation_max_batch": 32}))
    with TestClient(app, headers=AUTH) as c:
        session = new_session(c, trained)
        fork = c.post(f"/sessions/{session['id']}/fork", json={}).json()
    alone, crowded = asyncio.run(_alone_and_crowded(app, trained, [session["id"], fork["id"]]))
    assert alone == crowded


def test_a_restart_continues_identically(settings: Settings, trained: dict[str, Any]) -> None:
    with TestClient(create_app(settings), headers=AUTH) as first:
        session = new_session(first, trained)
        first.post(
            f"/sessions/{session['id']}/clamp", json={"layer": 1, "unit": 2, "value": 3.0, "steps": 50}
        )
        fork = first.post(f"/sessions/{session['id']}/fork", json={}).json()
        reference = [
            session_generate(first, session["id"], **GEN | {"random_seed": s})["text"] for s in (1, 2)
        ]
        before = session_generate(first, fork["id"], **GEN | {"random_seed": 1})["text"]
    with TestClient(create_app(settings), headers=AUTH) as second:  # a new process: nothing cached
        after = session_generate(second, fork["id"], **GEN | {"random_seed": 2})
    assert [before, after["text"]] == reference
    assert after["session"]["clamps"] == []  # 50 steps held over the 160 characters, then let go


def test_a_change_made_through_another_server_is_where_the_next_one_starts(
    settings: Settings, trained: dict[str, Any]
) -> None:
    # Each server starts a change from the session as it last changed it (app/services/session_cache.py).
    # Two servers over one database: what one remembers goes stale when the other changes or deletes
    # the session, and the next change through the first must start from the session as stored.
    with (
        TestClient(create_app(settings), headers=AUTH) as first,
        TestClient(create_app(settings), headers=AUTH) as second,
    ):
        session = new_session(first, trained)
        assert first.post(f"/sessions/{session['id']}/append", json={"text": MORE}).status_code == 200
        assert second.post(f"/sessions/{session['id']}/append", json={"text": " and"}).status_code == 200
        out = session_generate(first, session["id"], **GEN)
        reference = first.post(
            "/generate",
            json={"checkpoint_id": trained["checkpoint_id"], "prompt": PROMPT + MORE + " and"} | GEN,
        ).json()
        clamp = {"layer": 0, "unit": 1, "value": 2.0, "steps": 5}
        assert second.post(f"/sessions/{session['id']}/clamp", json=clamp).status_code == 200
        after_clamp = first.post(f"/sessions/{session['id']}/append", json={"text": "a"}).json()
        assert second.delete(f"/sessions/{session['id']}").status_code == 204
        gone = first.post(f"/sessions/{session['id']}/generate", json={"length": 3})
    assert out["text"] == reference["text"]
    assert out["session"]["characters"] == len(PROMPT + MORE + " and") + GEN["length"]
    assert after_clamp["session"]["clamps"] == [clamp | {"steps": 4}]  # the other server's clamp, held once
    assert gone.status_code == 404


def test_of_two_concurrent_changes_through_one_server_one_is_409(
    settings: Settings, trained: dict[str, Any]
) -> None:
    app = create_app(settings)
    with TestClient(app, headers=AUTH) as c:
        session = new_session(c, trained)

    async def both() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as ac:
            path = f"/sessions/{session['id']}/append"
            return list(await asyncio.gather(*(ac.post(path, json={"text": t}) for t in ("ab", "cd"))))

    codes = sorted(r.status_code for r in asyncio.run(both()))
    with TestClient(app, headers=AUTH) as c:
        stored = c.get(f"/sessions/{session['id']}").json()
    assert codes in ([200, 409], [200, 200])  # 409 unless one had finished before the other started
    assert stored["characters"] == len(PROMPT) + 2 * codes.count(200)


def test_a_clamp_is_held_on_appends_as_feed_holds_it(client: TestClient, trained: dict[str, Any]) -> None:
    session = new_session(client, trained)
    clamp = {"layer": 0, "unit": 3, "value": 2.5, "steps": 20}
    clamped = client.post(f"/sessions/{session['id']}/clamp", json=clamp)
    assert clamped.status_code == 200, clamped.text
    assert clamped.json()["clamps"] == [clamp]
    body = client.post(f"/sessions/{session['id']}/append", json={"text": MORE}).json()
    assert body["session"]["clamps"] == [clamp | {"steps": 20 - len(MORE)}]
    # In process: the prompt's state, clamped, then fed the same text.
    weights, vocab = trained["weights"], trained["vocab"]
    _, state = weights.feed(vocab.encode(PROMPT), StartState.zero(2, 32))
    logits, _ = weights.feed(vocab.encode(MORE), state.clamped(Clamp(0, 3, 2.5, 20)))
    unclamped, _ = weights.feed(vocab.encode(MORE), state)
    bits = [
        -float(row.log_softmax(-1)[i]) / math.log(2)
        for row, i in zip(logits.double(), vocab.encode(MORE), strict=True)
    ]
    assert body["surprisal_bits"] == pytest.approx(bits, rel=1e-6, abs=1e-6)
    assert not unclamped.equal(logits)  # the clamp changed what the model expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"layer": 2, "unit": 0, "value": 1.0, "steps": 5}, "layer"),
        ({"layer": 0, "unit": 32, "value": 1.0, "steps": 5}, "unit"),
        ({"layer": 0, "unit": 0, "value": 101.0, "steps": 5}, "value"),
        ({"layer": 0, "unit": 0, "value": 1.0, "steps": 0}, "steps"),
        ({"layer": 0, "unit": 0, "value": 1.0, "steps": 10_001}, "steps"),
        ({"layer": -1, "unit": 0, "value": 1.0, "steps": 5}, "layer"),
    ],
)
def test_clamp_bounds_are_422_naming_the_field(
    client: TestClient, trained: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    session = new_session(client, trained)
    response = client.post(f"/sessions/{session['id']}/clamp", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_refusals(client: TestClient, trained: dict[str, Any]) -> None:
    session = new_session(client, trained)
    sid = session["id"]
    assert client.get("/sessions/" + "0" * 32).status_code == 404
    assert client.post("/sessions/" + "0" * 32 + "/append", json={"text": "a"}).status_code == 404
    palindrome = client.post("/sessions", json={"job_id": trained["palindrome_job_id"]})
    assert palindrome.status_code == 409 and "text models" in palindrome.json()["detail"]
    unknown = client.post(f"/sessions/{sid}/append", json={"text": "king \u2603\u00e9"})
    assert (
        unknown.status_code == 422
        and "\u2603" in unknown.json()["detail"]
        and "text" in unknown.json()["detail"]
    )
    bad_prompt = client.post(
        "/sessions", json={"checkpoint_id": trained["checkpoint_id"], "prompt": "\u2603"}
    )
    assert bad_prompt.status_code == 422 and "prompt" in bad_prompt.json()["detail"]
    too_long = client.post(f"/sessions/{sid}/append", json={"text": "a" * 10_001})
    assert too_long.status_code == 422 and "text" in too_long.json()["detail"]
    assert client.post(f"/sessions/{sid}/generate", json={"length": 10_001}).status_code == 422
    assert (
        client.post(f"/sessions/{sid}/generate", json={"length": 5, "temperature": 1e-9}).status_code == 422
    )
    empty = new_session(client, trained, prompt="")
    assert client.post(f"/sessions/{empty['id']}/generate", json={"length": 5}).status_code == 409
    assert (
        client.post("/sessions", json={"checkpoint_id": trained["checkpoint_id"], "job_id": 1}).status_code
        == 422
    )
    # Nothing refused changed the session.
    assert client.get(f"/sessions/{sid}").json()["characters"] == len(PROMPT)


def test_another_token_sees_none_of_them_and_delete_ends_one(
    settings: Settings, trained: dict[str, Any]
) -> None:
    two_tokens = settings.model_copy(update={"api_tokens": SecretStr(f"{API_TOKEN},other-token")})
    with TestClient(create_app(two_tokens), headers=AUTH) as c:
        session = new_session(c, trained)
        mine = [s["id"] for s in c.get("/sessions").json()["sessions"]]
        assert session["id"] in mine
        other = {"Authorization": "Bearer other-token"}
        assert session["id"] not in [s["id"] for s in c.get("/sessions", headers=other).json()["sessions"]]
        assert c.get(f"/sessions/{session['id']}", headers=other).status_code == 404
        assert c.post(f"/sessions/{session['id']}/fork", json={}, headers=other).status_code == 404
        assert c.delete(f"/sessions/{session['id']}", headers=other).status_code == 404
        assert c.delete(f"/sessions/{session['id']}").status_code == 204
        assert c.get(f"/sessions/{session['id']}").status_code == 404
        assert (
            c.post(
                "/sessions", json={"checkpoint_id": trained["checkpoint_id"]}, headers={"Authorization": ""}
            ).status_code
            == 401
        )


def test_the_cap_per_token_is_429(settings: Settings, trained: dict[str, Any]) -> None:
    capped = settings.model_copy(
        update={"api_tokens": SecretStr("capped-token"), "max_sessions_per_token": 2}
    )
    auth = {"Authorization": "Bearer capped-token"}
    with TestClient(create_app(capped), headers=auth) as c:
        for s in c.get("/sessions").json()["sessions"]:  # left by an earlier run on the same database
            c.delete(f"/sessions/{s['id']}")
        first = new_session(c, trained)
        new_session(c, trained)
        refused = c.post("/sessions", json={"checkpoint_id": trained["checkpoint_id"]})
        assert refused.status_code == 429 and "RNNLAB_MAX_SESSIONS_PER_TOKEN" in refused.json()["detail"]
        assert refused.headers["Retry-After"]
        assert c.post(f"/sessions/{first['id']}/fork", json={}).status_code == 429
        c.delete(f"/sessions/{first['id']}")
        assert c.post(f"/sessions/{new_session(c, trained)['id']}/fork", json={}).status_code == 429


def test_an_idle_session_expires(client: TestClient, settings: Settings, trained: dict[str, Any]) -> None:
    session = new_session(client, trained)
    out = client.get(f"/sessions/{session['id']}").json()
    assert out["expires_at"] > out["last_used_at"]
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as db:  # as if it had been unused for longer than the idle time
        long_ago = utcnow() - timedelta(seconds=settings.session_idle_seconds + 1)
        db.execute(update(ModelSession).where(ModelSession.id == session["id"]).values(last_used_at=long_ago))
        db.commit()
    assert client.get(f"/sessions/{session['id']}").status_code == 404
    with sessions() as db:
        assert db.get(ModelSession, session["id"]) is None  # deleted, not just hidden


def test_a_change_made_meanwhile_wins_and_the_stale_one_is_409(
    client: TestClient, settings: Settings, trained: dict[str, Any]
) -> None:
    session = new_session(client, trained)
    sessions = sessionmaker_for(settings.resolved_database_url)
    idle = settings.session_idle_seconds
    with sessions() as db:
        owner = db.get(ModelSession, session["id"]).owner  # type: ignore[union-attr]
        stale = session_store.get(db, session["id"], owner=owner, idle_s=idle)
    assert client.post(f"/sessions/{session['id']}/append", json={"text": "a"}).status_code == 200
    with pytest.raises(SessionChanged):  # through the requests' own write path, the group commit
        writer_for(sessions).save(stale, state=stale.state, characters=stale.characters + 99)
    with sessions() as db:
        assert session_store.get(db, session["id"], owner=owner, idle_s=idle).characters == len(PROMPT) + 1


def test_the_state_round_trips_bitwise(
    client: TestClient, settings: Settings, trained: dict[str, Any]
) -> None:
    session = new_session(client, trained)
    sessions = sessionmaker_for(settings.resolved_database_url)
    with sessions() as db:
        row = db.get(ModelSession, session["id"])
        assert row is not None and row.dtype == "float32" and (row.num_layers, row.hidden_size) == (2, 32)
        stored = row.state
    _, h, c = trained["weights"].prime(trained["vocab"].encode(PROMPT))
    assert stored == StartState(h, c).flat.numpy().astype("<f4").tobytes()


def test_concurrent_creates_never_pass_the_cap(settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app.core.errors import TooManySessions

    sessions = sessionmaker_for(settings.resolved_database_url)
    owner = f"{uuid4().hex}{uuid4().hex}"  # a token of this test's own

    def create(_: int) -> str:
        with sessions() as db:
            try:
                bare_session(db, owner, cap=3)
            except TooManySessions:
                return "refused"
            return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5
    with sessions() as db:
        assert len(session_store.list_for(db, owner=owner, idle_s=3600)) == 3


def test_group_commit_answers_each_write_as_a_lone_commit_would(settings: Settings) -> None:
    # 16 threads save at once: 8 sessions, each written twice from the same read. Per session exactly
    # one write wins (whichever came first), the other is SessionChanged, and each winner's answer is
    # what the database holds.
    from concurrent.futures import ThreadPoolExecutor

    sessions = sessionmaker_for(settings.resolved_database_url)
    owner = f"{uuid4().hex}{uuid4().hex}"
    with sessions() as db:
        records = [bare_session(db, owner, cap=64) for _ in range(8)]
    writer = writer_for(sessions)

    def save(i: int) -> session_store.SessionRecord | str:
        record = records[i % 8]
        clamps = [{"layer": 0, "unit": 1, "value": i / 4, "steps": i + 1}]
        try:
            # Half of them unsynced: on SQLite both go through the driver (session_store.apply_all_sqlite).
            return writer.save(record, synced=i % 2 == 0, state=bytes([i]) * 16, characters=i, clamps=clamps)
        except SessionChanged:
            return "changed"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(save, range(16)))
    with sessions() as db:
        for k, record in enumerate(records):
            pair = [outcomes[k], outcomes[k + 8]]
            won = [o for o in pair if not isinstance(o, str)]
            assert len(won) == 1 and pair.count("changed") == 1
            stored = session_store.get(db, record.id, owner=owner, idle_s=3600)
            assert stored == won[0] and stored.version == 2  # every field, last_used_at and clamps too


@pytest.mark.parametrize("synced", [True, False])
def test_a_session_write_is_synced_as_rnnlab_session_fsync_says(
    settings: Settings, synced: bool, tmp_path: Path
) -> None:
    # What the database is asked to do (its own statements, as it receives them). `always`: the commit
    # is synced before the answer. `everysec`: committed before the answer, synced within a second (on
    # SQLite the WAL is synced by a checkpoint; PostgreSQL's WAL writer does it on its own).
    from sqlalchemy import event
    from sqlalchemy.orm import sessionmaker

    from app.core.db import make_engine
    from app.services.session_writer import FLUSH_WITHIN_S, GroupCommit

    engine = make_engine(settings.resolved_database_url)
    statements: list[str] = []
    sqlite = engine.dialect.name == "sqlite"
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as trace_file:
        # The drivers' own traces: the group commit writes through the driver.
        if sqlite:
            event.listen(engine, "connect", lambda dbapi, _: dbapi.set_trace_callback(statements.append))
        else:  # libpq's, of every message sent to the server
            event.listen(engine, "connect", lambda dbapi, _: dbapi.pgconn.trace(trace_file.fileno()))
        sessions = sessionmaker(engine, expire_on_commit=False)
        with sessions() as db:
            record = bare_session(db, f"{uuid4().hex}{uuid4().hex}", cap=64)
        statements.clear()
        sent_before = trace.stat().st_size
        saved = GroupCommit(sessions).save(record, synced=synced, state=b"\1" * 16, characters=3)
        answered = list(statements)
        sent = trace.read_text()[sent_before:]
        time.sleep(FLUSH_WITHIN_S + 1)
        engine.dispose()
    later = statements[len(answered) :]
    assert saved.characters == 3 and saved.version == 2
    if sqlite:
        level = "FULL" if synced else "NORMAL"
        update_at = next(i for i, s in enumerate(answered) if s.startswith("UPDATE sessions"))
        assert answered[update_at - 2 : update_at] == [f"PRAGMA synchronous={level}", "BEGIN IMMEDIATE"]
        assert answered[update_at + 1] == "COMMIT"
        assert answered[-1] == "PRAGMA synchronous=2"  # the pooled connection back to SQLite's FULL
        checkpoints = [s for s in later if s.startswith("PRAGMA wal_checkpoint")]
        assert checkpoints == ([] if synced else ["PRAGMA wal_checkpoint(PASSIVE)"])
    else:
        assert "UPDATE sessions SET" in sent
        asked_off = "SET LOCAL synchronous_commit TO OFF" in sent
        assert asked_off is not synced


def test_grouped_reads_answer_each_read_as_a_lone_get_would(settings: Settings) -> None:
    # 8 reads awaited at once (one or a few groups, one SELECT each): a live session of the caller's,
    # one of another owner's, an unknown id and an expired one, which is deleted as `get` deletes it.
    from app.core.errors import SessionNotFound
    from app.services.session_reader import reader_for

    sessions = sessionmaker_for(settings.resolved_database_url)
    owner, other = f"{uuid4().hex}{uuid4().hex}", f"{uuid4().hex}{uuid4().hex}"
    with sessions() as db:
        live, expired = bare_session(db, owner, cap=64), bare_session(db, owner, cap=64)
        theirs = bare_session(db, other, cap=64)
        long_ago = utcnow() - timedelta(seconds=7200)
        db.execute(update(ModelSession).where(ModelSession.id == expired.id).values(last_used_at=long_ago))
        db.commit()
    reader = reader_for(sessions)
    asked = [live.id, theirs.id, "0" * 32, expired.id] * 2

    async def read_all() -> list[session_store.SessionRecord | BaseException]:
        reads = (reader.get(i, owner=owner, idle_s=3600) for i in asked)
        return await asyncio.gather(*reads, return_exceptions=True)

    outcomes = asyncio.run(read_all())
    for found in outcomes[0::4]:
        assert isinstance(found, session_store.SessionRecord) and found == live
    for missing in outcomes[1::4] + outcomes[2::4] + outcomes[3::4]:
        assert isinstance(missing, SessionNotFound)
    with sessions() as db:
        assert db.get(ModelSession, expired.id) is None and db.get(ModelSession, theirs.id) is not None
