"""An in-memory HTTP client: raw HTTP/1.1 bytes through twisted.web's real channel.

No sockets and no reactor: the request is fed to an ``HTTPChannel`` over a
``StringTransport`` and the response parsed back (chunked bodies included), so
route tests exercise the same header, body and length handling as a server.
"""
from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class MemoryClient:
    def __init__(self, site: Any, client_ip: str = "127.0.0.1") -> None:
        self.site = site
        self.client_ip = client_ip

    def request(self, method: str, path: str, *, json: Any = None, body: bytes | None = None,
                headers: dict[str, str] | None = None, query: dict | None = None) -> Response:
        if query:
            path = f"{path}?{urlencode(query)}"
        if json is not None:
            body = jsonlib.dumps(json).encode()
        hdrs = {"Host": "localhost", **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
            hdrs["Content-Length"] = str(len(body))
        raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode() for k, v in hdrs.items()) + b"\r\n" + (body or b"")
        return self.raw(raw)

    def raw(self, data: bytes) -> Response:
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
        channel.callLater = Clock().callLater
        transport = StringTransport(peerAddress=IPv4Address("TCP", self.client_ip, 40000),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        channel.makeConnection(transport)
        channel.dataReceived(data)
        out = transport.value()
        channel.connectionLost(None)
        return parse_response(out)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)


def parse_response(data: bytes) -> Response:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2:]
    elif "content-length" in headers:
        body = rest[: int(headers["content-length"])]
    else:
        body = rest
    return Response(status, headers, body)
