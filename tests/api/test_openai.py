"""The OpenAI-compatible API with the real `openai` client against a real server (uvicorn on loopback).

The client is built with max_retries=0, so an answer it would retry shows up as an error here.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.core.settings import Settings
from app.main import create_app
from tests.api.test_generation import train_text
from tests.conftest import AUTH, TINY_PALINDROME, free_port, wait_for
from worker.lifecycle import run_job

pytestmark = pytest.mark.slow  # trains models and serves them

TOKEN = AUTH["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def server(sqlite_settings: Settings) -> Iterator[dict[str, Any]]:
    """A live server with a text model named `tales` (versions 1, 2; `tales@champion` is 1) and a
    palindrome model named `digits`."""
    trained = train_text(sqlite_settings, {"num_layers": 2, "hidden_size": 32})
    app = create_app(sqlite_settings)
    with TestClient(app, headers=AUTH) as client:
        name = f"tales-{trained['job_id']}"
        checkpoints = [c["id"] for c in client.get(f"/jobs/{trained['job_id']}/checkpoints").json()]
        for checkpoint_id in checkpoints:
            client.post(f"/models/{name}/versions", json={"checkpoint_id": checkpoint_id})
        client.put(f"/models/{name}/aliases/champion", json={"version": 1})
        digits_job = client.post("/train", json=TINY_PALINDROME).json()
        from app.core.db import sessionmaker_for

        assert run_job(
            digits_job["id"], sessions=sessionmaker_for(sqlite_settings.resolved_database_url)
        ) == ("succeeded")
        digits_checkpoint = client.get(f"/jobs/{digits_job['id']}").json()["latest_checkpoint_id"]
        client.post(f"/models/digits-{trained['job_id']}/versions", json={"checkpoint_id": digits_checkpoint})
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, timeout=30, what="uvicorn to start")
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "model": name,
            "digits": f"digits-{trained['job_id']}",
            "checkpoints": checkpoints,
        }
    finally:
        uv.should_exit = True
        thread.join(timeout=30)


def client_for(server: dict[str, Any], api_key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server['url']}/v1", api_key=api_key, max_retries=0, timeout=60)


def native(server: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = httpx.post(f"{server['url']}/generate", json=params, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_models_are_listed(server: dict[str, Any]) -> None:
    ids = {m.id: m for m in client_for(server).models.list()}
    assert server["model"] in ids and f"{server['model']}@champion" in ids
    assert server["digits"] not in ids  # a palindrome model completes no text
    card = ids[server["model"]]
    assert card.owned_by == "rnnlab" and card.object == "model"
    assert card.model_extra is not None and card.model_extra["root"] == f"{server['model']}:2"


def test_a_completion_is_the_native_generation(server: dict[str, Any]) -> None:
    completion = client_for(server).completions.create(
        model=server["model"], prompt="The ", max_tokens=30, temperature=0.9, top_p=0.95, seed=7
    )
    same = native(
        server, model=server["model"], prompt="The ", length=30, temperature=0.9, top_p=0.95, random_seed=7
    )
    choice = completion.choices[0]
    assert choice.text == same["text"] and choice.finish_reason == "length" and choice.index == 0
    assert completion.model == server["model"] and completion.object == "text_completion"
    assert completion.id.startswith("cmpl-") and abs(completion.created - time.time()) < 120
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 30)
    assert completion.usage.total_tokens == 34


def test_a_streamed_completion_joins_to_the_same_text(server: dict[str, Any]) -> None:
    client = client_for(server)
    params: dict[str, Any] = {"model": server["model"], "prompt": "Once", "max_tokens": 40, "seed": 3}
    whole = client.completions.create(**params).choices[0].text
    chunks = list(client.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    *texts, usage = chunks
    assert "".join(c.choices[0].text for c in texts) == whole
    assert texts[-1].choices[0].finish_reason == "length"
    assert usage.choices == [] and usage.usage is not None and usage.usage.completion_tokens == 40


def test_n_stop_logprobs_and_echo(server: dict[str, Any]) -> None:
    client = client_for(server)
    many = client.completions.create(model=server["model"], prompt="The ", max_tokens=25, n=3, seed=11)
    singles = [
        client.completions.create(model=server["model"], prompt="The ", max_tokens=25, seed=11 + i)
        .choices[0]
        .text
        for i in range(3)
    ]
    assert [c.text for c in many.choices] == singles and [c.index for c in many.choices] == [0, 1, 2]

    full = singles[0]
    stop = next(full[i : i + 2] for i in range(5, 20) if full.find(full[i : i + 2]) == i)
    cut = client.completions.create(model=server["model"], prompt="The ", max_tokens=25, seed=11, stop=[stop])
    assert cut.choices[0].text == full[: full.find(stop)] and cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].model_extra is not None and cut.choices[0].model_extra["stop_reason"] == stop

    echoed = client.completions.create(
        model=server["model"], prompt="The ", max_tokens=10, seed=11, echo=True, logprobs=2
    )
    choice = echoed.choices[0]
    assert choice.text == "The " + full[:10]
    assert choice.logprobs is not None
    assert choice.logprobs.tokens == list(choice.text) and choice.logprobs.text_offset == list(range(14))
    token_logprobs = choice.logprobs.token_logprobs
    assert token_logprobs is not None and token_logprobs[0] is None
    assert all(lp is not None and lp <= 0 for lp in token_logprobs[1:])
    top = choice.logprobs.top_logprobs
    assert top is not None and top[0] is None and all(t is not None and len(t) == 2 for t in top[1:])


def test_scoring_as_lm_evaluation_harness_asks_for_it(server: dict[str, Any]) -> None:
    # lm-evaluation-harness's local-completions loglikelihood request: context + continuation echoed back with
    # logprobs, one token generated and dropped; it sums token_logprobs[len(context):-1].
    context, continuation = "The king said", " to the queen"
    payload = {
        "model": server["model"],
        "prompt": [context + continuation],
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "seed": 1234,
        "echo": True,
    }
    answer = httpx.post(f"{server['url']}/v1/completions", json=payload, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    logprobs = answer.json()["choices"][0]["logprobs"]
    assert logprobs["tokens"][: len(context + continuation)] == list(context + continuation)
    loglikelihood = sum(logprobs["token_logprobs"][len(context) : -1])

    scored = httpx.post(
        f"{server['url']}/score",
        json={"model": server["model"], "text": context + continuation},
        headers=AUTH,
    ).json()
    expected = sum(scored["token_logprobs"][len(context) :])
    assert loglikelihood == pytest.approx(expected, rel=1e-6)
    # And max_tokens 0 scores without generating anything.
    payload |= {"max_tokens": 0, "prompt": context + continuation}
    zero = httpx.post(f"{server['url']}/v1/completions", json=payload, headers=AUTH, timeout=60).json()
    assert zero["choices"][0]["text"] == context + continuation and zero["usage"]["completion_tokens"] == 0
    bits = (
        -sum(zero["choices"][0]["logprobs"]["token_logprobs"][1:])
        / math.log(2)
        / (len(context + continuation) - 1)
    )
    assert bits == pytest.approx(scored["bits_per_character"], rel=1e-6)


def test_the_raw_stream_is_openai_server_sent_events(server: dict[str, Any]) -> None:
    body = {"model": server["model"], "prompt": "The", "max_tokens": 12, "stream": True, "n": 2, "seed": 5}
    with httpx.stream(
        "POST", f"{server['url']}/v1/completions", json=body, headers=AUTH, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"} and len({c["id"] for c in chunks}) == 1
    texts = [
        "".join(c["choices"][0]["text"] for c in chunks if c["choices"][0]["index"] == i) for i in range(2)
    ]
    assert all(len(t) == 12 for t in texts)
    ends = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"] is not None]
    assert sorted(e["index"] for e in ends) == [0, 1]


@pytest.mark.parametrize(
    ("params", "error", "param", "words"),
    [
        ({"n": 9}, openai.BadRequestError, "n", "less than or equal to 8"),
        ({"logprobs": 6}, openai.BadRequestError, "logprobs", "logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, openai.BadRequestError, "stop", "stop"),
        ({"stop": [""]}, openai.BadRequestError, "stop", "stop"),
        ({"presence_penalty": 3}, openai.BadRequestError, "presence_penalty", "presence_penalty"),
        ({"prompt": ["a"] * 9}, openai.BadRequestError, "prompt", "prompt"),
        ({"logit_bias": {"1": 5}}, openai.BadRequestError, "logit_bias", "not supported"),
        ({"suffix": "end"}, openai.BadRequestError, "suffix", "not supported"),
        ({"best_of": 3, "n": 1}, openai.BadRequestError, "best_of", "best_of"),
        ({"prompt": "\u2603"}, openai.BadRequestError, "prompt", "\u2603"),
        ({"model": "nobody"}, openai.NotFoundError, "model", "The model `nobody` does not exist."),
        ({"model": "not a name"}, openai.BadRequestError, "model", "model"),
    ],
)
def test_errors_reach_the_client_as_openai_exceptions(
    server: dict[str, Any], params: dict[str, Any], error: type[openai.APIStatusError], param: str, words: str
) -> None:
    request: dict[str, Any] = {"model": server["model"], "prompt": "The", "max_tokens": 5} | params
    with pytest.raises(error) as caught:
        client_for(server).completions.create(**request)
    assert words in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == param and body["type"] == "invalid_request_error"


def test_a_palindrome_model_a_bad_token_and_a_full_engine(server: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError) as digits:
        client_for(server).completions.create(model=server["digits"], prompt="12", max_tokens=2)
    assert digits.value.status_code == 400 and "completes no text" in digits.value.message
    with pytest.raises(openai.AuthenticationError) as denied:
        client_for(server, api_key="wrong").completions.create(
            model=server["model"], prompt="a", max_tokens=2
        )
    assert "not valid" in denied.value.message
    missing = httpx.post(f"{server['url']}/v1/completions", json={"model": server["model"]}, headers=AUTH)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "prompt"
    assert httpx.get(f"{server['url']}/v1/nothing").json()["error"]["message"] == "Not Found"


def test_penalties_and_streamed_logprobs_through_the_client(server: dict[str, Any]) -> None:
    client = client_for(server)
    params: dict[str, Any] = {"model": server["model"], "prompt": "The ", "max_tokens": 40, "temperature": 0}
    penalised = client.completions.create(
        **params, frequency_penalty=0.5, presence_penalty=0.2, extra_body={"repetition_penalty": 1.2}
    )
    same = native(
        server,
        model=server["model"],
        prompt="The ",
        length=40,
        temperature=0,
        frequency_penalty=0.5,
        presence_penalty=0.2,
        repetition_penalty=1.2,
    )
    assert penalised.choices[0].text == same["text"] != client.completions.create(**params).choices[0].text

    whole = client.completions.create(**params, logprobs=2).choices[0]
    chunks = list(client.completions.create(**params, logprobs=2, stream=True))
    streamed = [
        lp for c in chunks if c.choices[0].logprobs for lp in c.choices[0].logprobs.token_logprobs or []
    ]
    assert whole.logprobs is not None and streamed == whole.logprobs.token_logprobs
    assert len(streamed) == 40 and all(lp is not None and lp <= 0 for lp in streamed)
    chosen_only = client.completions.create(**params, logprobs=0).choices[0].logprobs
    assert chosen_only is not None and chosen_only.token_logprobs == whole.logprobs.token_logprobs
    assert chosen_only.top_logprobs == [{}] * 40
