"""The HTTP side of the client: requests with the token, server-sent events, and errors as the server
worded them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


class ApiError(Exception):
    """The server refused a request (or could not be reached); `str(exc)` is its `detail`."""


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"HTTP {response.status_code}: {response.text[:200]}"


class ApiClient:
    """One server. Every method returns the decoded JSON body or raises ApiError."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.is_error:
            raise ApiError(_detail(response))
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request("POST", path, json=body)

    def delete(self, path: str) -> None:
        self._request_empty("DELETE", path)

    def _request_empty(self, method: str, path: str) -> None:
        """A request whose success has no body (204)."""
        try:
            response = self._http.request(method, path)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.is_error:
            raise ApiError(_detail(response))

    def stream_events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `body` and yield each server-sent event's `data` (a JSON object) as it arrives."""
        try:
            with self._http.stream("POST", path, json=body, timeout=None) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(_detail(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (keep-alives), event names
                    event = json.loads(line.removeprefix("data:").strip())
                    if "error" in event:  # a failure after the 200 was sent can only come as an event
                        raise ApiError(str(event.get("detail") or event["error"]))
                    yield event
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc}") from exc
