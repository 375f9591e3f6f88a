"""Fuzz a live server from its own OpenAPI document with schemathesis (``make fuzz-api``).

Not collected by pytest (no ``test_`` prefix): it starts the real daemon
(``twistd -n helios --no-auth --rate-limit off``) on a loopback port, seeds the
tutorial's ``users`` table and a ``dev`` branch so the document's examples hit
real data, runs ``schemathesis run <url>/v1/openapi.json`` with a bounded
number of examples per operation, then stops the server. Exit status 0 only if
schemathesis found nothing (no 5xx, every status, content type, header and
body as documented) and the server logged no unhandled error.

    .venv/bin/python -P tests/api/fuzz_api.py [--max-examples 50] [--seed N]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for live_server
from live_server import LiveServer  # noqa: E402

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# The checks that hold for a server running --no-auth: ignored_auth would expect 401s that
# --no-auth deliberately does not send; negative_data_rejection / positive_data_acceptance
# judge the server's leniency, not the document's honesty.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
SEED_SQL = [
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INT, created_at INT)",
    "INSERT INTO users VALUES (1, 'Alice', 30, 1701446400), (2, 'Bob', 25, 1701446500), "
    "(3, 'Carol', 41, 1701446600)",
]


def seed(server: LiveServer) -> None:
    for sql in SEED_SQL:
        r = server.post("/v1/branches/main/execute", {"sql": sql})
        if r.status != 200:
            raise RuntimeError(f"seeding failed: {r.status} {r.body!r}")
    r = server.post("/v1/branches", {"name": "dev"})
    if r.status != 201:
        raise RuntimeError(f"seeding failed: {r.status} {r.body!r}")


def summarise(junit: Path) -> tuple[int, int, int]:
    """(test suites, failures, errors) from schemathesis's JUnit report."""
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases = sum(int(s.get("tests", 0)) for s in suites)
    failures = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    return cases, failures, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-examples", type=int, default=50, help="test cases per operation and phase")
    ap.add_argument("--seed", type=int, help="hypothesis seed, to reproduce a run")
    ap.add_argument("--workers", default="2")
    ap.add_argument("--checks", default=",".join(CHECKS), help="schemathesis checks (default: %(default)s)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="helios-fuzz-") as tmp:
        server = LiveServer(Path(tmp) / "data", extra=["--no-auth", "--rate-limit", "off"]).start()
        try:
            seed(server)
            junit = Path(tmp) / "junit.xml"
            cmd = [SCHEMATHESIS, "run", f"{server.url}/v1/openapi.json",
                   "--checks", args.checks, "--max-examples", str(args.max_examples),
                   "--workers", args.workers, "--request-timeout", "30",
                   "--report", "junit", "--report-junit-path", str(junit)]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            print("$", " ".join(cmd), flush=True)
            t0 = time.monotonic()
            code = subprocess.call(cmd, cwd=tmp)           # schemathesis keeps its state in the cwd
            elapsed = time.monotonic() - t0
        finally:
            server.stop()
        log = server.log()
        unhandled = [line for line in log.splitlines() if " failed" in line and "request " in line]
        cases, failures, errors = summarise(junit) if junit.exists() else (0, 0, 0)
        print(f"\nfuzz-api: schemathesis exit {code}; {cases} test suites (operations + stateful), "
              f"{failures} failed, {errors} errored, {len(unhandled)} unhandled server errors logged; "
              f"{elapsed:.0f} s")
        for line in unhandled[:20]:
            print("  server:", line)
        if code != 0 or failures or errors or unhandled:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
