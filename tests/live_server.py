"""`rnnlab serve` on a fresh data dir, with a corpus small enough that a text job trains in seconds.

The dashboard's browser test and the client CLI's tests drive it as a user does: over HTTP only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import PYTHON, clean_env, free_port, start_server, stop_process
from tests.data import GRIMMS_EXCERPT

# Sent as `Authorization: Bearer` by every client here; a server that checks tokens accepts it.
TOKEN = "rnnlab-live-server-token"


@dataclass(frozen=True)
class LiveServer:
    url: str
    token: str
    data_dir: Path
    dataset_id: int  # a small corpus: tiny text jobs on it take seconds, not the built-in one's minute

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@contextmanager
def live_server(tmp: Path, **settings: str) -> Iterator[LiveServer]:
    """`settings`: more RNNLAB_* variables for the server and its worker."""
    port = free_port()
    data_dir = tmp / "data"
    env = clean_env(
        RNNLAB_DATA_DIR=str(data_dir),
        RNNLAB_BROKER_POLLING_INTERVAL="0.1",
        RNNLAB_API_TOKENS=TOKEN,
        **settings,
    )
    log = tmp / "server.log"
    proc = start_server([PYTHON, "-m", "app.cli", "serve", "--port", str(port)], env, log, port)
    try:
        url = f"http://127.0.0.1:{port}"
        corpus = GRIMMS_EXCERPT.read_text(encoding="utf-8")[5_000:25_000]  # past the header and contents
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            upload = http.post("/datasets", files={"file": ("tales.txt", corpus)}, data={"name": "tales"})
        assert upload.status_code == 201, upload.text
        yield LiveServer(url=url, token=TOKEN, data_dir=data_dir, dataset_id=upload.json()["id"])
    finally:
        assert stop_process(proc) == 0, log.read_text()[-3000:]
