"""Embedding: the API mounted inside an existing Twisted site, and ApiServer's own lifecycle."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


from helios import EmbeddedDatabase

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed_in_twisted_site.py"


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


def test_example_site_serves_its_page_and_the_api(tmp_path):
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", "0", "--data", str(tmp_path / "e.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"listening on (\d+)", line).group(1))
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/") == (200, b"Hello from an existing Twisted site\n")
        assert _get(base + "/db/health") == (200, b"OK")
        status, body = _get(base + "/db/v1/branches")
        assert status == 200 and json.loads(body)["branches"][0]["name"] == "main"
        req = urllib.request.Request(base + "/db/v1/branches/main/execute", method="POST",
                                     data=json.dumps({"sql": "CREATE TABLE t (id INT PRIMARY KEY)"}).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["statement_type"] == "CREATE_TABLE"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    db = EmbeddedDatabase(str(tmp_path / "e.db"))          # closed cleanly: the lock is free, data is there
    assert db.execute("SELECT count(*) FROM t").rows == [(0,)]
    db.close()


def test_serve_with_shutdown_checkpoints_and_closes(tmp_path):
    code = f"""
import json, urllib.request
from twisted.internet import defer, reactor, threads
from helios import EmbeddedDatabase
from helios.api import ApiServer
db = EmbeddedDatabase({str(tmp_path / 's.db')!r})
server = ApiServer(("127.0.0.1", 0), db)
done = defer.Deferred()
def client():
    port = server.port.getHost().port
    req = urllib.request.Request(f"http://127.0.0.1:{{port}}/v1/branches/main/execute", method="POST",
                                 data=json.dumps({{"sql": "CREATE TABLE k (id INT PRIMARY KEY)"}}).encode())
    return json.loads(urllib.request.urlopen(req, timeout=10).read())
def go():
    d = threads.deferToThread(client)
    d.addCallback(lambda body: print(body["statement_type"], flush=True))
    d.addErrback(lambda f: print("client failed:", f.getErrorMessage(), flush=True))
    d.addBoth(lambda _: done.callback(None))
reactor.callLater(0.5, go)
server.serve_with_shutdown(done)
print("stopped", flush=True)
"""
    r = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["CREATE_TABLE", "stopped"], r.stdout
    db = EmbeddedDatabase(str(tmp_path / "s.db"))
    assert db.execute("SELECT count(*) FROM k").rows == [(0,)]
    assert list((tmp_path / "s.db").glob("checkpoint-*.manifest"))
    db.close()
