"""The Workers page and a job's attempts in a real browser (headless Chromium, as
tests/web/test_browser.py), against `rnnlab serve` and its real worker: the worker is listed with its
device, the job it runs links to that job, its finished count grows, and a job's page shows the
attempt that worker made."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import wait_for
from tests.live_server import LiveServer, live_server
from tests.web.test_browser import TIMEOUT_MS, browser, page  # noqa: F401 (fixtures)
from tests.web.test_xray_browser import trained_job

pytestmark = pytest.mark.slow  # a server, a worker and a browser as subprocesses

SCREENSHOT = "/tmp/workers-page.png"
TINY = {"task": "palindrome", "input_length": 5, "hidden_size": 8, "batch_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The worker reports the job it runs in its heartbeat: beat every second, not every 30 s.
    with live_server(tmp_path_factory.mktemp("workers"), RNNLAB_SWEEP_SECONDS="1") as running:
        yield running


def sign_in(page: Page, server: LiveServer, path: str) -> None:  # noqa: F811 (the fixture's name)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}{path}")
    page.get_by_label("API token").fill(server.token)
    page.get_by_role("button", name="Save").click()


def test_the_worker_is_listed_with_its_job_and_the_job_shows_its_attempt(
    server: LiveServer,
    page: Page,  # noqa: F811
) -> None:
    finished_job = trained_job(server, TINY | {"train_steps": 20})
    with server.client() as http:
        (worker,) = http.get("/workers").json()
        # Long enough to be running while the page is looked at; cancelled below.
        running = http.post("/train", json=TINY | {"train_steps": 1_000_000}).json()["id"]

    sign_in(page, server, "/ui/workers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Workers")
    row = page.locator(f"#workers tr[data-worker='{worker['name']}']")
    expect(row).to_have_attribute("data-alive", "true")
    cells = row.locator("td")
    expect(cells.nth(1)).to_have_text(worker["queue"])
    expect(cells.nth(2)).to_have_text("cpu")
    expect(cells.nth(3)).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))  # it beats every second
    assert (cells.nth(3).locator("time").get_attribute("title") or "").startswith("20")  # the ISO time
    expect(cells.nth(4)).to_have_text("live")
    # The page is polled: the job the worker picks up appears as a link without a reload.
    link = cells.nth(5).get_by_role("link")
    expect(link).to_have_text(f"Job {running}")
    expect(link).to_have_attribute("href", f"/ui/jobs/{running}")
    expect(cells.nth(6)).to_have_text("1")
    page.screenshot(path=SCREENSHOT, full_page=True)

    with server.client() as http:
        http.post(f"/jobs/{running}/cancel")

        def cancelled() -> dict[str, Any] | None:
            job: dict[str, Any] = http.get(f"/jobs/{running}").json()
            return job if job["status"] == "cancelled" else None

        wait_for(cancelled, timeout=120, what="the cancelled job")
    expect(cells.nth(5)).to_have_text("idle")
    expect(cells.nth(6)).to_have_text("2")  # a cancelled job is a finished one

    # The finished job's page: one attempt, by that worker, on the CPU, succeeded.
    page.goto(f"{server.url}/ui/jobs/{finished_job}")
    attempt = page.locator("#attempts tr[data-attempt='1']")
    expect(attempt).to_contain_text(worker["name"])
    expect(attempt.locator("td").nth(2)).to_have_text("cpu")
    expect(attempt.locator("td").nth(5)).to_have_text("succeeded")
    expect(page.locator("#job-waiting")).to_be_hidden()
    page.screenshot(path="/tmp/workers-job-attempts.png", full_page=True)


def test_a_job_no_worker_takes_says_why_it_waits(server: LiveServer, page: Page) -> None:  # noqa: F811
    # This server's only worker consumes the CPU queue: a `cuda` job waits on the GPU queue.
    with server.client() as http:
        job = http.post("/train", json=TINY | {"train_steps": 20, "device": "cuda"}).json()["id"]
    try:
        sign_in(page, server, f"/ui/jobs/{job}")
        expect(page.locator("#job-waiting")).to_contain_text("no live worker consumes it")
        expect(page.locator("#attempts tbody")).to_contain_text("no worker has claimed the job")
    finally:
        with server.client() as http:
            http.post(f"/jobs/{job}/cancel")


def test_no_worker_says_how_to_start_one(server: LiveServer, page: Page) -> None:  # noqa: F811
    # GET /workers answers an empty list (this server's worker is always there, so the browser is told
    # so): the page says what to run rather than show an empty table.
    def empty(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body="[]")

    page.route(lambda url: urlparse(url).path == "/workers", empty)
    sign_in(page, server, "/ui/workers")
    body = page.locator("#workers tbody")
    expect(body).to_contain_text("rnnlab worker")
    expect(body).to_contain_text("./run serve")
    expect(page.locator("#workers-total")).to_have_text("(0 live of 0)")
