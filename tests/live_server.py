"""Start the real daemon (``twistd -n helios``) on a free loopback port, for end-to-end tests."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TWISTD = str(Path(sys.executable).with_name("twistd"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LiveServer:
    data: Path
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    port: int = 0
    log_path: Path | None = None
    key: str | None = None

    def start(self, timeout: float = 20) -> "LiveServer":
        self.log_path = self.data.parent / f"{self.data.name}-twistd-{time.monotonic_ns()}.log"
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "helios", "--data", str(self.data),
             "--listen", "tcp:0:interface=127.0.0.1", *self.extra],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, env=env, cwd=str(self.data.parent))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            m = re.search(r"Site starting on (\d+)", text)
            if m and "opening database" in text:
                self.port = int(m.group(1))
                try:
                    if self.get("/health").status == 200:
                        keys = re.findall(r"^.*?(sk_[A-Za-z0-9_-]+)\s*$", text, re.M)
                        self.key = keys[-1] if keys else None
                        return self
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"twistd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None,
                timeout: float = 30) -> Reply:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if self.key and "X-API-Key" not in hdrs and "Authorization" not in hdrs:
            hdrs["X-API-Key"] = self.key
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
