"""A lean HTTP/1.1 load client for the benchmarks: keep-alive connections, GET, a JSON body back.

Why not httpx: on a 2-core machine the load generator shares the CPU with the service it measures, and
httpx's AsyncClient spends more CPU per request (its connection pool scans every connection, anyio
adds layers) than the service does. At 32 clients it halved the measured throughput. This client does
what wrk or oha do per request and nothing else: write a request, read the status line, the headers and
`Content-Length` bytes of body (or, for server-sent events, the chunks).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")


def run_client(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop (what uvicorn runs the service on), less CPU per request than the default
    loop; the default loop where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class HTTPError(RuntimeError):
    pass


class Connection:
    """One keep-alive connection to 127.0.0.1:`port`; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]):
        self._reader, self._writer = reader, writer
        self._head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())

    @classmethod
    async def open(cls, port: int, headers: dict[str, str]) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, {"Host": f"127.0.0.1:{port}"} | headers)

    async def get_json(self, path: str, params: dict[str, Any]) -> Any:
        """GET `path?params`; the decoded JSON body of a 200, HTTPError for anything else."""
        return await self._json(*await self._request(path, params))

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body; the decoded JSON body of a 200, HTTPError for anything else."""
        return await self._json(*await self._request(path, body=body))

    async def get_events(self, path: str, params: dict[str, Any]) -> tuple[float, str]:
        """GET a `text/event-stream` (chunked, as uvicorn sends it): (seconds from the request to the
        first event with text, the text of all events joined)."""
        start = time.perf_counter()
        return await self._events(start, *await self._request(path, params))

    async def post_events(self, path: str, body: dict[str, Any]) -> tuple[float, str]:
        """As `get_events`, for a POSTed JSON body; reads OpenAI's chunks (`choices[].text`) too."""
        start = time.perf_counter()
        return await self._events(start, *await self._request(path, body=body))

    async def _json(self, status: str, fields: dict[str, str]) -> Any:
        length = int(next(v for k, v in fields.items() if k.lower() == "content-length"))
        body = await self._reader.readexactly(length)
        if status != "200":
            raise HTTPError(f"{status}: {body[:500]!r}")
        return json.loads(body)

    async def _events(self, start: float, status: str, _: dict[str, str]) -> tuple[float, str]:
        if status != "200":
            raise HTTPError(f"{status}: {await self._reader.read(500)!r}")
        first, texts, buffer = 0.0, [], b""
        while size := int((await self._reader.readuntil(b"\r\n"))[:-2], 16):  # a chunk of 0 ends it
            buffer += (await self._reader.readexactly(size + 2))[:-2]
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                data = event.removeprefix(b"data: ")
                if data == b"[DONE]":
                    continue
                decoded = json.loads(data)
                choices = decoded.get("choices")
                text = "".join(c["text"] for c in choices) if choices else decoded.get("text")
                if text:
                    first = first or time.perf_counter() - start
                    texts.append(text)
        await self._reader.readexactly(2)  # the last chunk's CRLF
        return first, "".join(texts)

    async def _request(
        self, path: str, params: dict[str, Any] | None = None, *, body: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, str]]:
        if body is None:
            self._writer.write(f"GET {path}?{urlencode(params or {})} HTTP/1.1\r\n{self._head}\r\n".encode())
        else:
            data = json.dumps(body).encode()
            head = f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
            self._writer.write(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        return status_line.split(" ", 2)[1], dict(line.split(":", 1) for line in lines if ":" in line)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()
