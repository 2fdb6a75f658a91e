"""HTTP client for the REST API, over TCP (``http://host:port``) or a unix socket
(``unix:/path``)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import PyirqbalanceError

__all__ = ["ApiClient", "ApiResponse", "ApiUnreachable", "connect_unix"]


class ApiUnreachable(PyirqbalanceError):
    """No API answers at the URL (daemon down, API off, wrong address)."""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    #: Decoded JSON, or the text of a non-JSON reply (``format=raw``, /metrics).
    data: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        if isinstance(self.data, dict) and "error" in self.data:
            return str(self.data["error"])
        return f"HTTP {self.status}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            connect_unix(sock, self._path, self.timeout)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connect_unix(sock: socket.socket, path: str, timeout: float | None) -> None:
    """Connect a unix stream socket that has a timeout, waiting up to ``timeout`` seconds
    while the listener's backlog is full.

    A socket with a timeout is non-blocking underneath, and on a unix socket a full backlog
    fails ``connect`` with EAGAIN at once instead of waiting as a blocking connect does; the
    socket stays unconnected, so the attempt is repeated until the deadline."""
    if timeout is None:  # a blocking socket: the kernel waits for room itself
        sock.connect(path)
        return
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{path}: the listener's backlog stayed full for {timeout:g} s") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


class ApiClient:
    """One request per connection; ``token`` is sent as a bearer token when set."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        if url.startswith("unix:"):
            self._unix: str | None = url[5:]
            self._host = self._prefix = ""
        else:
            parts = urlsplit(url if "//" in url else f"http://{url}")
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError(f"API URL {url!r}: expected http://host:port or unix:/path")
            self._unix = None
            self._host = parts.netloc
            self._prefix = parts.path.rstrip("/")

    def _connection(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, self.timeout)
        return http.client.HTTPConnection(self._host, timeout=self.timeout)

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None) -> ApiResponse:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connection()
        try:
            conn.request(method, target, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            ctype = resp.getheader("Content-Type", "")
        except (OSError, http.client.HTTPException) as err:
            raise ApiUnreachable(f"cannot reach the API at {self.url}: {err}") from err
        finally:
            conn.close()
        return ApiResponse(resp.status, _decode(raw, ctype))

    def get(self, path: str, **params: Any) -> ApiResponse:
        return self.request("GET", path, params)


def _decode(raw: bytes, ctype: str) -> Any:
    if ctype.startswith("application/json"):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")
