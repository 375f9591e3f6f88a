"""Bounded HTTP load on loopback: wrk when installed, else an asyncio keep-alive client.

Both generators take the same ``Target`` (method, path, a body that may carry a
per-request id) and return the same ``LoadResult`` (req/s, p50/p99 latency,
errors), so a run can say which one measured it and nothing else changes.
Every run stops by itself after its duration (plus a hard timeout), and only
loopback hosts are accepted. ``ServerProcess`` starts a server subprocess, reads
its port from its log and always stops it (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

POINT_STRIDE = 7919            # prime, coprime with any 10^k: i -> i * stride mod n visits every id
CONNECT_TIMEOUT = 5.0
RESPONSE_TIMEOUT = 5.0         # a reply slower than this counts as a timeout error (as wrk --timeout)


# ---------------------------------------------------------------- what to send
@dataclass(frozen=True)
class Target:
    """One request shape. ``body`` may hold ``{id}``: request i gets id
    ``(i * POINT_STRIDE) % id_modulus + 1`` (a scrambled walk over existing keys)
    when ``id_modulus`` is set, else ``id_start + i`` (unique, for inserts)."""

    name: str
    method: str
    path: str
    body: str | None = None
    id_modulus: int | None = None
    id_start: int = 1

    def id_for(self, i: int) -> int:
        return (i * POINT_STRIDE) % self.id_modulus + 1 if self.id_modulus else self.id_start + i

    def body_for(self, i: int) -> bytes | None:
        if self.body is None:
            return None
        return self.body.replace("{id}", str(self.id_for(i))).encode() if "{id}" in self.body else self.body.encode()


@dataclass(frozen=True)
class LoadResult:
    generator: str
    connections: int
    duration_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def errors_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()) if v) or "0"


def require_loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"load is only generated against loopback addresses, not {host!r}")


def have_wrk() -> str | None:
    return shutil.which("wrk")


def run_load(host: str, port: int, target: Target, connections: int, duration: float, *,
             generator: str = "auto", wrk_threads: int = 1) -> LoadResult:
    """``generator``: "wrk", "python" or "auto" (wrk when installed)."""
    require_loopback(host)
    wrk = have_wrk()
    if generator == "wrk" and wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --generator python")
    if generator in ("wrk", "auto") and wrk is not None:
        return run_wrk(wrk, host, port, target, connections, duration, threads=wrk_threads)
    return asyncio.run(run_python(host, port, target, connections, duration))


# ---------------------------------------------------------------- wrk
def _lua_string(s: str) -> str:
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


def wrk_script(target: Target, threads: int) -> str:
    """A Lua script: the request (ids from a per-thread counter interleaved across
    threads, so inserts stay unique) and a ``done`` that prints one JSON line."""
    method, path = _lua_string(target.method), _lua_string(target.path)
    lines = ['local created = 0',
             'function setup(thread) thread:set("tid", created); created = created + 1 end',
             'local n = 0',
             f'local nthreads = {threads}',
             'local headers = {["Content-Type"] = "application/json"}']
    if target.body is None or "{id}" not in target.body:
        body = "nil" if target.body is None else _lua_string(target.body)
        lines += ['local req = nil',
                  f'function init(args) req = wrk.format({method}, {path}, headers, {body}) end',
                  'function request() return req end']
    else:
        parts = ", ".join(_lua_string(p) for p in target.body.split("{id}"))
        if target.id_modulus:
            id_expr = f"(i * {POINT_STRIDE}) % {target.id_modulus} + 1"
        else:
            id_expr = f"{target.id_start} + i"
        lines += [f'local parts = {{{parts}}}',
                  'function request()',
                  '  local i = n * nthreads + tid',
                  '  n = n + 1',
                  f'  local id = string.format("%d", {id_expr})',
                  '  local body = table.concat(parts, id)',
                  f'  return wrk.format({method}, {path}, headers, body)',
                  'end']
    lines += ['function done(summary, latency, requests)',
              '  local e = summary.errors',
              '  io.write(string.format(\'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, '
              '"p99_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n\', '
              'summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), '
              'e.connect, e.read, e.write, e.status, e.timeout))',
              'end']
    return "\n".join(lines) + "\n"


def run_wrk(wrk: str, host: str, port: int, target: Target, connections: int, duration: float, *,
            threads: int = 1) -> LoadResult:
    threads = max(1, min(threads, connections))
    seconds = max(1, math.ceil(duration))          # wrk takes whole seconds only
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="helios-wrk-", delete=False) as f:
        f.write(wrk_script(target, threads))
        script = f.name
    try:
        cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", f"{RESPONSE_TIMEOUT:g}s", "-s", script, f"http://{host}:{port}{target.path}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        os.unlink(script)
    m = re.search(r"^WRKJSON (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    d = json.loads(m.group(1))
    errors = {"connect": d["connect"], "read": d["read"], "write": d["write"],
              "non-2xx": d["status"], "timeout": d["timeout"]}
    return LoadResult("wrk", connections, d["duration_us"] / 1e6, d["requests"],
                      d["p50_us"] / 1000, d["p99_us"] / 1000, errors)


# ---------------------------------------------------------------- asyncio fallback
def _request_bytes(target: Target, host: str, port: int, i: int) -> bytes:
    body = target.body_for(i)
    head = f"{target.method} {target.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep_alive) of one HTTP/1.1 response, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection") != "close"


async def run_python(host: str, port: int, target: Target, connections: int, duration: float) -> LoadResult:
    """Closed loop, one request in flight per keep-alive connection, like wrk."""
    require_loopback(host)
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "non-2xx": 0, "timeout": 0}
    counter = iter(range(1 << 62))
    t_start = time.perf_counter()
    t_end = t_start + duration

    async def connection() -> None:
        writer = None
        try:
            while time.perf_counter() < t_end:
                if writer is None:
                    try:
                        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
                    except (OSError, asyncio.TimeoutError):
                        errors["connect"] += 1
                        await asyncio.sleep(0.01)
                        continue
                t0 = time.perf_counter()
                try:
                    writer.write(_request_bytes(target, host, port, next(counter)))
                    status, keep = await asyncio.wait_for(_read_response(reader), RESPONSE_TIMEOUT)
                except asyncio.TimeoutError:
                    errors["timeout"] += 1
                    keep = False
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                    errors["read"] += 1
                    keep = False
                else:
                    latencies.append(time.perf_counter() - t0)
                    if not 200 <= status < 400:
                        errors["non-2xx"] += 1
                if not keep:
                    writer.close()
                    writer = None
        finally:
            if writer is not None:
                writer.close()

    await asyncio.wait_for(asyncio.gather(*(connection() for _ in range(connections))),
                           duration + RESPONSE_TIMEOUT + CONNECT_TIMEOUT + 5)
    elapsed = time.perf_counter() - t_start
    return LoadResult("python-asyncio", connections, elapsed, len(latencies),
                      percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000, errors)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# ---------------------------------------------------------------- one-off requests
def http(method: str, url: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request: for loading data and checking answers."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# ---------------------------------------------------------------- server subprocesses
class ServerProcess:
    """A server subprocess whose port appears in its output (``port_pattern``, one group).

    Use as a context manager: the process is stopped on exit, whatever happened."""

    def __init__(self, name: str, cmd: Sequence[str], port_pattern: str, log_path: Path, *,
                 env: dict[str, str] | None = None, cwd: str | None = None, ready_path: str = "/health") -> None:
        self.name = name
        self.ready_path = ready_path
        self.cmd = list(cmd)
        self.port_pattern = re.compile(port_pattern)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self, timeout: float = 30) -> "ServerProcess":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                m = self.port_pattern.search(self.log())
                if m:
                    self.port = int(m.group(1))
                    if self._answers():
                        return self
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
                time.sleep(0.05)
            raise RuntimeError(f"{self.name} did not start within {timeout:g}s:\n{self.log()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        """Any HTTP answer on ``ready_path`` (even 404 or 405) means the port is served."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------- profiling a server under load
@dataclass(frozen=True)
class Profile:
    """Samples of a server taken by py-spy while it held the GIL (``--gil``): under the GIL
    that is where its CPU goes. ``self_share``/``total_share`` are per function, as
    fractions of those samples; ``gil_busy`` is samples / (rate x seconds)."""

    samples: int
    gil_busy: float
    self_share: list[tuple[str, float]]
    total_share: list[tuple[str, float]]
    total_of: dict[str, float] = field(default_factory=dict)


def find_py_spy(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if Path(explicit).is_file() else shutil.which(explicit)
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def profile_during(py_spy: str, pid: int, seconds: int, load: Any, rate: int = 200) -> Profile:
    """Record ``pid`` for ``seconds`` while ``load()`` runs (it should last as long)."""
    out = Path(tempfile.mkstemp(prefix="helios-pyspy-", suffix=".txt")[1])
    cmd = [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate), "-f", "raw", "--gil",
           "--nolineno", "-o", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        load()
        _, err = spy.communicate(timeout=seconds + 30)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-2000:]}")
        return summarize_collapsed(out.read_text(), rate * seconds)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
        out.unlink(missing_ok=True)


def summarize_collapsed(text: str, expected_samples: int, top: int = 25) -> Profile:
    """Self and inclusive shares per function from collapsed stacks ("f1;f2;f3 count")."""
    self_counts: dict[str, int] = {}
    total_counts: dict[str, int] = {}
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
        for f in set(frames):
            total_counts[f] = total_counts.get(f, 0) + n

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        return [(f, n / samples) for f, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]] if samples else []
    return Profile(samples, samples / expected_samples if expected_samples else 0.0,
                   ranked(self_counts), ranked(total_counts), {f: n / samples for f, n in total_counts.items()})
