"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright.

Chromium comes from apt (`./run test` installs it), never from Playwright's own download, which cannot
work offline. A machine without it FAILS this test: a dashboard nobody ran in a browser is untested.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.slow  # a server, a worker and a browser as subprocesses

TIMEOUT_MS = 60_000  # two shared cores: generous, and never a measure of speed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `./run test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield page
    page.close()
    assert not errors, f"the page reported errors: {errors}"


def test_start_a_job_watch_it_finish_and_generate(server: LiveServer, page: Page, tmp_path: Path) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    page.get_by_label("API token").fill(server.token)
    page.get_by_role("button", name="Save").click()

    # A tiny text job on the small corpus, from the form.
    page.get_by_label("Task").select_option("text")
    page.get_by_label("Corpus").select_option(str(server.dataset_id))
    for label, value in {
        "Hidden size": "16",
        "Embedding size": "8",
        "Layers": "1",
        "Sequence length": "16",
        "Batch size": "8",
        "Training steps": "40",
        "Sample every (steps)": "20",
    }.items():
        page.locator("fieldset[data-task=text]").get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Start training").click()
    link = page.locator("#new-job-result a")
    expect(link).to_have_text("job 1")

    # The list is polled: the job's row reaches 100 % and succeeds without a reload.
    row = page.locator("#jobs tr[data-job-id='1']")
    expect(row.locator(".percent")).to_have_text("100 %", timeout=TIMEOUT_MS)
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_contain_text("40 / 40")

    link.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Job 1")
    expect(page.locator("#job-progress-text")).to_contain_text("100 %")
    expect(page.locator("#checkpoints tbody tr")).not_to_have_count(0)
    expect(page.locator("#checkpoints tbody")).to_contain_text("final")

    page.get_by_label("Prompt").fill("Once ")
    page.get_by_label("Length (characters)").fill("60")
    page.get_by_label("Random seed (optional)").fill("7")
    page.get_by_role("button", name="Generate").click()
    generated = page.locator("#generated[data-done=true]")
    expect(generated).to_be_visible()
    text = generated.inner_text()
    assert text.startswith("Once ") and len(text) == len("Once ") + 60, repr(text)

    # The learning timeline: a row per kept checkpoint, the last the final one, each a sample of
    # "The "; the table is the API's, and asking again with the same seed gives the same table.
    timeline = page.locator("#timeline tbody tr")
    expect(timeline).to_have_count(page.locator("#checkpoints tbody tr").count())
    expect(timeline.last).to_have_attribute("data-step", "40")
    samples = page.locator("#timeline pre.sample")
    first_samples = samples.all_inner_texts()
    assert all(sample.startswith("The ") for sample in first_samples), first_samples
    page.get_by_label("Sampling seed").fill("2")
    page.get_by_role("button", name="Sample every checkpoint").click()
    expect(samples).not_to_have_text(first_samples, use_inner_text=True)
    page.get_by_label("Sampling seed").fill("1")
    page.get_by_role("button", name="Sample every checkpoint").click()
    expect(samples).to_have_text(first_samples, use_inner_text=True)
    # The memory horizon figure, drawn by the server for every kept checkpoint.
    expect(page.locator("#horizon-img")).to_be_visible()
    page.wait_for_function("document.getElementById('horizon-img').naturalWidth === 800")
    page.screenshot(path=tmp_path / "job.png", full_page=True)
