"""The thread budget: the API's and the worker's shares of the cores."""

from __future__ import annotations

import pytest

from app.core.settings import Settings
from app.runtime import threads


@pytest.mark.parametrize(("cores", "api", "serve_worker"), [(1, 1, 1), (2, 1, 1), (4, 1, 3), (16, 4, 12)])
def test_default_shares_suit_the_core_count(
    monkeypatch: pytest.MonkeyPatch, cores: int, api: int, serve_worker: int
) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    settings = Settings(_env_file=None)
    assert threads.api_threads(settings) == api
    assert threads.serve_worker_threads(settings) == serve_worker
    assert threads.worker_threads(settings) == cores  # a worker alone has the whole machine


def test_the_environment_sets_the_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setenv("RNNLAB_API_THREADS", "3")
    monkeypatch.setenv("RNNLAB_WORKER_THREADS", "2")
    settings = Settings(_env_file=None)
    assert (threads.api_threads(settings), threads.serve_worker_threads(settings)) == (3, 2)
    assert threads.worker_threads(settings) == 2
