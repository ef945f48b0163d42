"""The dashboard's pages and assets, in-process: readable HTML, every form control labelled, nothing
fetched from another host, and no change to the API's OpenAPI document."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

PAGES = [
    "/",
    "/ui/jobs/1",
    "/ui/experiments",
    "/ui/experiments/1",
    "/ui/xray",
    "/ui/xray?job=1",
    "/ui/workers",
]
ASSETS = [
    "api.js",
    "token.js",
    "jobs.js",
    "job.js",
    "experiments.js",
    "experiment.js",
    "xray.js",
    "workers.js",
]


class Outline(HTMLParser):
    """What the checks need from a page: headings, labels, form controls and the URLs it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.h1: list[str] = []
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "h1":
            self._in_h1 = True
            self.h1.append("")
        if tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea"):
            self.controls.append(a)
        self.urls += [str(a[k]) for k in ("src", "href") if a.get(k)]

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.h1[-1] += data


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_accessible_html_with_local_assets(sqlite_client: Any, path: str) -> None:
    response = sqlite_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = outline(response.text)
    assert '<html lang="en">' in response.text
    assert len(page.h1) == 1 and page.h1[0].strip(), "one non-empty h1 per page"
    unlabelled = [c for c in page.controls if c.get("type") != "hidden" and c.get("id") not in page.label_for]
    assert not unlabelled, f"form controls without a <label for>: {unlabelled}"
    external = [url for url in page.urls if re.match(r"^(https?:)?//", url)]
    assert not external, f"the dashboard must work offline; it loads {external}"
    for url in page.urls:
        if url.startswith("/ui/static/"):
            assert sqlite_client.get(url).status_code == 200, url


@pytest.mark.parametrize("name", ASSETS)
def test_scripts_are_served_as_javascript_and_reach_no_other_host(sqlite_client: Any, name: str) -> None:
    response = sqlite_client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    # Browsers refuse to run a module script served with a non-JavaScript type.
    assert response.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    hosts = set(re.findall(r"https?://[^\s\"'`]+", response.text))
    assert not hosts, f"{name} reaches {hosts}"


def test_dashboard_routes_stay_out_of_the_api_document(sqlite_client: Any) -> None:
    paths = sqlite_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_links_every_part_of_the_dashboard(sqlite_client: Any, path: str) -> None:
    nav = outline(sqlite_client.get(path).text).urls
    assert {"/", "/ui/experiments", "/ui/xray", "/ui/workers", "/docs"} <= set(nav)


def test_the_workers_page_is_a_shell_over_get_workers(sqlite_client: Any) -> None:
    html = sqlite_client.get("/ui/workers").text
    assert outline(html).h1 == ["Workers"]
    assert '<a href="/ui/workers">Workers</a>' in html
    assert '<table id="workers">' in html and "/ui/static/workers.js" in html
    # The script reads the same list any client does, through api.js (the token, the errors).
    script = sqlite_client.get("/ui/static/workers.js").text
    assert 'getJSON("/workers")' in script and 'from "./api.js"' in script


def test_the_job_page_has_a_place_for_its_attempts_and_why_it_waits(sqlite_client: Any) -> None:
    html = sqlite_client.get("/ui/jobs/1").text
    assert '<table id="attempts">' in html and 'id="job-waiting"' in html


def test_unknown_pages_and_assets_are_refused(sqlite_client: Any) -> None:
    assert sqlite_client.get("/ui/jobs/not-a-number").status_code == 422
    assert sqlite_client.get("/ui/static/missing.js").status_code == 404
