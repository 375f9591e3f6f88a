"""Auth and rate limiting on the real daemon: live revocation, exact buckets, a polite client."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from live_server import LiveServer

HELIOS = str(Path(sys.executable).with_name("helios"))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HELIOS, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_cli_key_works_and_revocation_takes_effect_on_the_running_server(tmp_path):
    data = tmp_path / "data"
    s = LiveServer(data).start()
    try:
        created = _cli("keys", "create", "--data", str(data), "--name", "ci", "--scopes", "read,write")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        assert key.startswith("sk_")
        listing = _cli("keys", "list", "--data", str(data))
        assert "ci" in listing.stdout and key not in listing.stdout
        t = time.monotonic()
        while s.get("/v1/branches", headers={"X-API-Key": key}).status != 200:   # the server re-reads the store
            assert time.monotonic() - t < 1.0, "a new key was not accepted within a second"
            time.sleep(0.05)
        assert _cli("keys", "revoke", "--data", str(data), "--name", "ci").returncode == 0
        t = time.monotonic()
        while s.get("/v1/branches", headers={"X-API-Key": key}).status != 401:
            assert time.monotonic() - t < 1.0, "revoked key still accepted after a second"
            time.sleep(0.05)
        stored = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
        assert key.encode() not in stored and key.split("_", 2)[2].encode() not in stored   # the secret (it may hold "_")
    finally:
        s.stop()


def test_jwt_from_the_cli_is_accepted_by_the_server(tmp_path):
    env = {"HELIOSDB_JWT_SECRET": "x" * 40}
    s = LiveServer(tmp_path / "data", env=env).start()
    try:
        assert s.key is None                       # a JWT secret is configured: no admin key is created
        out = _cli("token", "--user", "user123", "--tenant", "tenant456", "--scopes", "sync:read,sync:write", env=env)
        assert out.returncode == 0, out.stderr
        token = out.stdout.strip().splitlines()[-1]
        assert s.get("/v1/branches", headers={"Authorization": f"Bearer {token}"}).status == 200
        assert s.get("/v1/branches", headers={"Authorization": "Bearer " + token[:-3] + "AAA"}).status == 401
    finally:
        s.stop()


def test_concurrent_burst_allows_exactly_burst_plus_refill(tmp_path):
    s = LiveServer(tmp_path / "data", extra=["--no-auth", "--rate-limit", "60/60/20"]).start()   # 1 token/s
    try:
        results: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(51)

        def worker():
            start.wait()
            for _ in range(4):
                try:
                    status = s.get("/v1/branches", timeout=10).status
                except (urllib.error.URLError, OSError):
                    status = -1
                with lock:
                    results.append(status)
        threads = [threading.Thread(target=worker) for _ in range(50)]
        for th in threads:
            th.start()
        start.wait()
        t0 = time.monotonic()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - t0
        assert len(results) == 200 and set(results) <= {200, 429}
        allowed = results.count(200)
        assert abs(allowed - (20 + 1.0 * elapsed)) <= 1 + 1.0 * 0.2, (allowed, elapsed)
    finally:
        s.stop()


def test_rate_limited_client_honours_headers_and_never_fails(tmp_path):
    """The tutorial's RateLimitedClient: 200 requests that wait when the headers say so."""
    s = LiveServer(tmp_path / "data", extra=["--no-auth", "--rate-limit", "1800/60/10"]).start()   # 30/s
    try:
        unhandled = 0
        done = 0
        while done < 200:
            r = s.get("/v1/branches")
            if r.status == 429:
                time.sleep(int(r.headers["retry-after"]))
                continue
            if r.status != 200:
                unhandled += 1
            done += 1
            if int(r.headers["x-ratelimit-remaining"]) == 0:
                time.sleep(max(0.0, 1 / 30))
        assert done == 200 and unhandled == 0
    finally:
        s.stop()
