"""The real daemon: twistd -n helios on a loopback port, driven over HTTP."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from live_server import LiveServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def server(tmp_path):
    s = LiveServer(tmp_path / "data").start()
    yield s
    s.stop()


def test_plugin_is_listed():
    from live_server import TWISTD
    out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, check=True).stdout
    assert "helios" in out
    out = subprocess.run([TWISTD, "helios", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--data", "--listen", "--no-auth", "--rate-limit", "--checkpoint-interval", "--retention",
                   "--max-body"):
        assert option in out


def test_first_start_prints_admin_key_once_and_data_survives_restart(tmp_path):
    s = LiveServer(tmp_path / "data").start()
    assert s.key and s.key.startswith("sk_")
    assert s.get("/v1/branches", headers={"X-API-Key": "sk_wrong"}).status == 401
    r = s.post("/v1/branches/main/execute", {"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"})
    assert r.status == 200, r.body
    assert s.post("/v1/branches/main/execute", {"sql": "INSERT INTO t VALUES (1, 'kept')"}).status == 200
    assert s.stop() == 0
    assert s.key.encode() not in b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    again = LiveServer(tmp_path / "data").start()
    try:
        assert again.key is None and "sk_" not in again.log()
        again.key = s.key
        r = again.post("/v1/branches/main/query", {"sql": "SELECT v FROM t"})
        assert r.json()["rows"] == [{"v": "kept"}]
    finally:
        assert again.stop() == 0


def test_tutorial_script(tmp_path):
    # A generous limit keeps the test quick; the script itself waits out 429s by Retry-After.
    server = LiveServer(tmp_path / "data", extra=["--rate-limit", "6000/60/100"]).start()
    try:
        env = {**os.environ, "BASE_URL": server.url, "HELIOSDB_API_KEY": server.key}
        r = subprocess.run(["bash", str(EXAMPLES / "tutorial.sh")], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "steps answered as documented" in r.stdout
    finally:
        server.stop()


def test_timeout_answers_408_while_health_stays_fast(server):
    server.post("/v1/branches/main/execute", {"sql": "CREATE TABLE n (i INTEGER PRIMARY KEY)"})
    rows = [{"i": i} for i in range(1000)]
    assert server.post("/v1/branches/main/tables/n/data", {"rows": rows}).status == 201
    worst = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            t = time.monotonic()
            assert server.get("/health").status == 200
            worst.append(time.monotonic() - t)
            time.sleep(0.01)
    th = threading.Thread(target=probe)
    th.start()
    t = time.monotonic()
    r = server.post("/v1/branches/main/query", {"sql": "SELECT count(*) FROM n a, n b, n c", "timeout_ms": 500})
    elapsed = time.monotonic() - t
    done.set()
    th.join()
    assert r.status == 408, r.body
    assert r.json() == {"status": 408, "error": "QueryTimeout", "message": "Query exceeded timeout of 500ms"}
    assert elapsed < 3
    assert worst and sorted(worst)[int(len(worst) * 0.9)] < 0.05       # /health kept answering


def test_sigterm_exits_cleanly_within_ten_seconds(server):
    assert server.post("/v1/branches/main/execute", {"sql": "CREATE TABLE t (id INT PRIMARY KEY)"}).status == 200
    t = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < 10
    assert list((server.data / "helios.db").glob("checkpoint-*.manifest"))      # checkpointed on the way out


def test_kill_minus_nine_during_writes_loses_no_acknowledged_write(tmp_path):
    s = LiveServer(tmp_path / "data", extra=["--rate-limit", "off"]).start()
    key = s.key
    s.post("/v1/branches/main/execute", {"sql": "CREATE TABLE w (id INTEGER PRIMARY KEY, v TEXT)"})
    acked: list[int] = []
    stop = threading.Event()

    def writer(base: int):
        i = base
        while not stop.is_set():
            try:
                r = s.post("/v1/branches/main/execute", {"sql": "INSERT INTO w VALUES ($1, 'x')", "params": [i]},
                           timeout=5)
            except OSError:
                return
            if r.status == 200:
                acked.append(i)
            i += 1
    threads = [threading.Thread(target=writer, args=(k * 1_000_000,)) for k in range(4)]
    for th in threads:
        th.start()
    time.sleep(random.uniform(0.5, 1.0))
    s.proc.kill()                                         # SIGKILL mid-stream
    s.proc.wait()
    stop.set()
    for th in threads:
        th.join()
    assert len(acked) > 10
    again = LiveServer(tmp_path / "data", extra=["--rate-limit", "off"]).start()
    again.key = key
    try:
        r = again.post("/v1/branches/main/query", {"sql": "SELECT id FROM w", "row_format": "array"})
        present = {row[0] for row in r.json()["rows"]}
        assert set(acked) <= present, f"lost {len(set(acked) - present)} acknowledged writes"
    finally:
        again.stop()


def test_no_auth_is_refused_off_loopback(tmp_path):
    from live_server import TWISTD
    r = subprocess.run([TWISTD, "-n", "--pidfile=", "helios", "--data", str(tmp_path / "d"), "--no-auth",
                        "--listen", "tcp:0:interface=0.0.0.0"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--no-auth is only allowed on a loopback interface" in r.stdout + r.stderr


def test_second_signal_exits_at_once_and_loses_nothing(tmp_path):
    s = LiveServer(tmp_path / "data", extra=["--rate-limit", "off"]).start()
    s.post("/v1/branches/main/execute", {"sql": "CREATE TABLE n (i INTEGER PRIMARY KEY)"})
    assert s.post("/v1/branches/main/tables/n/data", {"rows": [{"i": i} for i in range(400)]}).status == 201
    def long_query() -> None:
        try:
            s.post("/v1/branches/main/query", {"sql": "SELECT count(*) FROM n a, n b, n c", "timeout_ms": 60_000},
                   timeout=90)
        except OSError:
            pass                                      # the server went away mid-query: expected here
    slow = threading.Thread(target=long_query)
    slow.start()
    time.sleep(0.5)                                   # the query is running: a clean stop would wait for it
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    t = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    code = s.proc.wait(10)
    assert time.monotonic() - t < 3 and code != 0
    assert "second signal, exiting now" in s.log()
    slow.join(90)
    again = LiveServer(tmp_path / "data", extra=["--rate-limit", "off"]).start()
    again.key = s.key
    try:
        assert again.post("/v1/branches/main/query", {"sql": "SELECT count(*) AS c FROM n"}).json()["rows"] == [{"c": 400}]
    finally:
        again.stop()


def test_client_disconnect_cancels_its_query(tmp_path):
    import json
    import socket
    s = LiveServer(tmp_path / "data", extra=["--no-auth", "--rate-limit", "off"]).start()
    try:
        s.post("/v1/branches/main/execute", {"sql": "CREATE TABLE n (i INTEGER PRIMARY KEY)"})
        s.post("/v1/branches/main/tables/n/data", {"rows": [{"i": i} for i in range(400)]})
        body = json.dumps({"sql": "SELECT count(*) FROM n a, n b, n c", "timeout_ms": 60_000}).encode()
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"POST /v1/branches/main/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.5)
        sock.close()                                  # the client gives up
        t = time.monotonic()
        while "POST /v1/branches/main/query 499" not in s.log():
            assert time.monotonic() - t < 5, s.log()[-2000:]
            time.sleep(0.05)
        assert s.get("/health").status == 200

        def cpu_seconds() -> float:
            fields = Path(f"/proc/{s.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        time.sleep(0.3)
        before = cpu_seconds()
        time.sleep(1.0)
        assert cpu_seconds() - before < 0.3          # the cross join stopped; it is not burning a core
    finally:
        s.stop()
