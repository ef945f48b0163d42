"""The X-ray page in a real browser (headless Chromium, as tests/web/test_browser.py): a text coloured
character by character by a unit's value, with the value under the pointer; the palindrome view with
c, h, the prediction and k(t) of a Phased LSTM. The colours and readouts are checked against the
API's own answer for the same request."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import wait_for
from tests.live_server import LiveServer
from tests.web.test_browser import TIMEOUT_MS, browser, page, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # a server, a worker and a browser as subprocesses

TEXT = "Once upon a time, a king (a kind one) said: \u201cno.\u201d"


def trained_job(server: LiveServer, config: dict[str, Any]) -> int:  # noqa: F811 (the fixture's name)
    with server.client() as http:
        job = http.post("/train", json=config).json()

        def finished() -> dict[str, Any] | None:
            state: dict[str, Any] = http.get(f"/jobs/{job['id']}").json()
            return state if state["status"] in ("succeeded", "failed") else None

        state = wait_for(finished, timeout=300, what="the training job")
    assert state["status"] == "succeeded", state
    return int(job["id"])


def background_alpha(style: str) -> float:
    match = re.search(r"rgba\(\d+, \d+, \d+, ([0-9.]+)\)", style)
    return float(match.group(1)) if match else 1.0  # rgb(...) is opaque


def test_the_text_is_coloured_by_the_chosen_unit(server: LiveServer, page: Page, tmp_path: Path) -> None:  # noqa: F811
    config = {"task": "text", "dataset_id": server.dataset_id, "hidden_size": 16, "embedding_size": 8}
    config |= {"num_layers": 2, "seq_length": 16, "batch_size": 8, "train_steps": 30, "device": "cpu"}
    job_id = trained_job(server, config)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/ui/xray?job={job_id}")
    page.get_by_label("API token").fill(server.token)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("X-ray of a model")
    page.get_by_label("Text (a text model)").fill(TEXT)
    page.get_by_label("Layer", exact=True).fill("1")
    page.get_by_label("Unit", exact=True).fill("3")
    page.get_by_role("button", name="X-ray").click()
    expect(page.locator("#xray-result[data-ready=true]")).to_be_visible()
    spans = page.locator("#xray-text span")
    expect(spans).to_have_count(len(TEXT))
    assert "".join(spans.all_inner_texts()) == TEXT

    with server.client() as http:
        body = {"job_id": job_id, "text": TEXT, "layers": [1], "units": [3]}
        answer = http.post("/analyze", json=body).json()
    c = answer["layers"][0]["signals"]["c"][0]
    largest = max(abs(v) for v in c)
    # Colour by c (the default): each character's strength is |c| over the largest |c|, and the
    # pointer's readout is its value.
    for n in (0, 7, len(TEXT) - 1):
        span = spans.nth(n)
        assert background_alpha(span.get_attribute("style") or "") == pytest.approx(
            abs(c[n]) / largest, abs=2e-3
        )
        span.hover()
        expect(page.locator("#xray-readout")).to_contain_text(f"c = {c[n]:.4f}")

    page.get_by_label("Colour by").select_option("surprisal")
    expect(page.locator("#xray-result")).to_have_attribute("data-signal", "surprisal")
    bits = answer["text"]["surprisal_bits"]
    spans.nth(5).hover()
    expect(page.locator("#xray-readout")).to_contain_text(f"surprisal (bits) = {bits[5]:.4f}")
    spans.nth(0).hover()
    expect(page.locator("#xray-readout")).to_contain_text("none (no context yet)")
    page.screenshot(path=tmp_path / "xray-text.png", full_page=True)


def test_a_refusal_shows_the_apis_detail(server: LiveServer, browser: Browser) -> None:  # noqa: F811
    # Its own page: the `page` fixture fails a test on the console error a refused fetch logs.
    tab = browser.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(f"{server.url}/ui/xray?job=999999")
    tab.get_by_label("API token").fill(server.token)
    tab.get_by_role("button", name="Save").click()
    tab.get_by_role("button", name="X-ray").click()
    expect(tab.locator("#xray-error")).to_contain_text("job 999999")
    tab.get_by_label("Model by").select_option("model")
    tab.get_by_label("Job, checkpoint or model").fill("no-such-model")
    tab.get_by_role("button", name="X-ray").click()
    expect(tab.locator("#xray-error")).to_contain_text("no-such-model")
    tab.close()


def test_the_palindrome_view_shows_c_h_the_prediction_and_k(
    server: LiveServer,  # noqa: F811
    page: Page,  # noqa: F811
    tmp_path: Path,
) -> None:
    config = {"task": "palindrome", "model": "phased_lstm", "input_length": 5, "hidden_size": 8}
    config |= {"batch_size": 16, "train_steps": 30, "device": "cpu"}
    job_id = trained_job(server, config)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/ui/xray?job={job_id}")
    page.get_by_label("API token").fill(server.token)
    page.get_by_role("button", name="Save").click()
    page.get_by_label("Digits (a palindrome model; used when given)").fill("12345")
    page.get_by_label("Unit", exact=True).fill("2")
    page.get_by_role("button", name="X-ray").click()
    expect(page.locator("#xray-result[data-ready=true]")).to_be_visible()
    table = page.locator("#xray-digits")
    expect(table).to_be_visible()
    with server.client() as http:
        answer = http.post("/analyze", json={"job_id": job_id, "digits": "12345", "units": [2]}).json()
    rows = table.locator("tr")
    headers = [rows.nth(n).locator("th").inner_text() for n in range(rows.count())]
    assert headers == ["digit", "prediction", "p(prediction)", "cell c", "output h", "time gate k(t)"]
    assert rows.nth(0).locator("td").all_inner_texts() == list("12345")
    assert rows.nth(1).locator("td").all_inner_texts() == [str(d) for d in answer["digits"]["predictions"]]
    k = answer["layers"][0]["signals"]["k"][0]
    assert rows.nth(5).locator("td").all_inner_texts() == [f"{v:.2f}" for v in k]
    rows.nth(3).locator("td").nth(4).hover()
    c = answer["layers"][0]["signals"]["c"][0]
    expect(page.locator("#xray-readout")).to_contain_text(f"cell c = {c[4]:.4f}")
    page.screenshot(path=tmp_path / "xray-digits.png", full_page=True)
