"""HTTP benchmarks (issue 4): the real daemon beside a bare Klein route and sqlite3 behind Klein.

Usage: ``.venv/bin/python -P bench/bench_http.py [--quick] [--connections 1,16] [--duration 10] [--profile]``
(``-P``: serve the installed package; ``PYTHONPATH=.`` serves the source tree, staged
with its grammar in the temp dir; ``--profile`` adds py-spy profiles of the daemon).

The daemon (``twistd -n helios --no-auth --rate-limit off``) runs in a
subprocess on a loopback port with its data on a real disk, a users table of
10k rows loaded through the API first. Load comes from wrk when installed,
else from the asyncio keep-alive generator in ``http_load.py``; each run stops
by itself. Targets: ``GET /health``, a point ``POST /query`` by primary key
(the id varies per request), ``GET .../data?limit=20`` and a single-row insert
(unique ids, durable commits: group commit matters at 16 connections).
Baselines in the same run, one server at a time on the same cores: a bare
Klein route returning ``{"ok": true}`` and stdlib sqlite3 (in memory, one
lock) answering the same point query through the same kind of Klein route,
off the reactor like helios and, to price that hop, on the reactor. Every
answer is checked once before its load.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_load as hl  # noqa: E402  (the bench dir is not on sys.path under ``python -P``)

try:
    import common as c  # noqa: E402
except ImportError:          # a checkout without the shared helpers still runs
    c = None

HOST = "127.0.0.1"
USERS = 10_000
LOAD_BATCH = 1_000
USERS_DDL = "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INT, created_at INT)"
POINT_SQL = "SELECT * FROM users WHERE id = $1"
POINT_BODY = '{"sql": "' + POINT_SQL + '", "params": [{id}]}'
INSERT_BODY = ('{"rows": [{"id": {id}, "name": "bench{id}", "email": "bench{id}@example.com", '
               '"age": 42, "created_at": {id}}]}')
INSERT_ID_BASE = 1_000_000            # each insert run gets its own million: ids never collide
P99_TARGET_MS = 50.0
POINT_VS_KLEIN_TARGET = 0.60
TWISTD = str(Path(sys.executable).with_name("twistd"))

KLEIN_OK = hl.Target("baseline: bare Klein {ok: true}", "GET", "/ok")
SQLITE_POINT = hl.Target("baseline: sqlite3 point query via Klein", "POST", "/query", POINT_BODY, id_modulus=USERS)
SQLITE_INLINE = hl.Target("baseline: sqlite3 point, on the reactor", "POST", "/query-inline", POINT_BODY,
                          id_modulus=USERS)
HEALTH = hl.Target("helios GET /health", "GET", "/health")
POINT = hl.Target("helios POST /query point by id", "POST", "/v1/branches/main/query", POINT_BODY, id_modulus=USERS)
DATA = hl.Target("helios GET /data?limit=20", "GET", "/v1/branches/main/tables/users/data?limit=20")
INSERT = hl.Target("helios POST /data single-row insert", "POST", "/v1/branches/main/tables/users/data",
                   INSERT_BODY, id_start=INSERT_ID_BASE)


# ---------------------------------------------------------------- workload rows (as bench/common.py)
def user_row(i: int) -> tuple[int, str, str, int, int]:
    if c is not None:
        return c.user_row(i)
    h = (i * 2654435761) & 0xFFFFFFFF
    return (i, f"user{i}", f"user{i}@example.com", 18 + (h >> 7) % 72, 1_500_000_000 + h)


USER_COLUMNS = ("id", "name", "email", "age", "created_at")


def user_object(i: int) -> dict[str, Any]:
    return dict(zip(USER_COLUMNS, user_row(i)))


# ---------------------------------------------------------------- baseline servers (run as subprocesses)
def baseline_resource(kind: str) -> Any:
    """``klein``: one route, a constant. ``sqlite``: the point query on stdlib sqlite3,
    parsed and rendered with orjson, run in the reactor's thread pool under one lock."""
    import threading

    import orjson
    from klein import Klein
    from twisted.internet import threads

    app = Klein()
    if kind == "klein":
        @app.route("/ok", methods=["GET"])
        def ok(request: Any) -> bytes:
            request.setHeader(b"content-type", b"application/json")
            return b'{"ok":true}'
        return app.resource()

    import sqlite3
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute(USERS_DDL)
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", (user_row(i) for i in range(1, USERS + 1)))
    conn.commit()
    lock = threading.Lock()
    sql = POINT_SQL.replace("$1", "?")

    def point(body: bytes) -> bytes:
        req = orjson.loads(body)
        with lock:
            cur = conn.execute(sql, req.get("params") or ())
            rows = cur.fetchall()
            columns = [d[0] for d in cur.description]
        return orjson.dumps({"columns": columns, "rows": [dict(zip(columns, r)) for r in rows],
                             "row_count": len(rows)})

    @app.route("/query", methods=["POST"])
    def query(request: Any) -> Any:
        request.setHeader(b"content-type", b"application/json")
        return threads.deferToThread(point, request.content.read())

    @app.route("/query-inline", methods=["POST"])
    def query_inline(request: Any) -> bytes:
        """The same work without the thread-pool hop: what that hop costs."""
        request.setHeader(b"content-type", b"application/json")
        return point(request.content.read())
    return app.resource()


def serve_baseline(kind: str) -> None:
    from twisted.internet import reactor
    from twisted.web import server
    reactor.suggestThreadPoolSize(max(4, 2 * (os.cpu_count() or 2)))   # the daemon's pool size
    site = server.Site(baseline_resource(kind))
    site.log = lambda request: None
    port = reactor.listenTCP(0, site, interface=HOST)
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()


# ---------------------------------------------------------------- servers
def helios_root() -> str:
    spec = importlib.util.find_spec("helios")
    if spec is None or spec.origin is None:
        raise RuntimeError("helios is not importable (install it, or set PYTHONPATH to the repository)")
    return str(Path(spec.origin).resolve().parent.parent)


def daemon_pythonpath(tmp: Path) -> str:
    """Where the daemon imports helios from: the package this process resolves. A source
    tree lacks ``helios.grammar`` (setup.py maps it from ``grammar/``), so it is served
    from a copy with the grammar in place, taken when the benchmark starts."""
    root = Path(helios_root())
    if (root / "helios" / "grammar").is_dir() or not (root / "grammar" / "sql.lark").is_file():
        return str(root)
    staged = tmp / "pkg"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "helios", staged / "helios", ignore=skip)
    shutil.copytree(root / "grammar", staged / "helios" / "grammar", ignore=skip)
    return str(staged)


def start_daemon(tmp: Path) -> hl.ServerProcess:
    data = tmp / "data"
    path = daemon_pythonpath(tmp)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")]))}
    cmd = [TWISTD, "-n", "--pidfile=", "helios", "--data", str(data), "--listen", f"tcp:0:interface={HOST}",
           "--no-auth", "--rate-limit", "off"]
    return hl.ServerProcess("helios daemon", cmd, r"Site starting on (\d+)", tmp / "daemon.log",
                            env=env, cwd=str(tmp)).start()


def start_baseline(kind: str, tmp: Path) -> hl.ServerProcess:
    cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--serve-baseline", kind]
    return hl.ServerProcess(f"{kind} baseline", cmd, r"listening on (\d+)", tmp / f"{kind}.log",
                            ready_path="/ok" if kind == "klein" else "/query").start()


# ---------------------------------------------------------------- data and answers
def expect(cond: bool, what: str, got: Any) -> None:
    if not cond:
        raise RuntimeError(f"wrong answer: {what}; got {str(got)[:500]}")


def load_users(base: str) -> None:
    status, body = hl.http("POST", f"{base}/v1/branches/main/execute", {"sql": USERS_DDL})
    expect(status == 200, "CREATE TABLE users answers 200", (status, body))
    for start in range(1, USERS + 1, LOAD_BATCH):
        rows = [user_object(i) for i in range(start, min(USERS + 1, start + LOAD_BATCH))]
        status, body = hl.http("POST", f"{base}/v1/branches/main/tables/users/data", {"rows": rows})
        expect(status == 201 and body.get("inserted") == len(rows), f"batch insert at id {start}", (status, body))


def check_point(base: str, path: str, i: int = 4242) -> None:
    status, body = hl.http("POST", base + path, {"sql": POINT_SQL, "params": [i]})
    expect(status == 200 and body.get("rows") == [user_object(i)], f"point query id {i}", (status, body))


def check_helios(base: str) -> None:
    status, body = hl.http("GET", f"{base}/health")
    expect(status == 200 and body == "OK", "/health is 200 OK", (status, body))
    check_point(base, POINT.path)
    status, body = hl.http("GET", base + DATA.path)
    expect(status == 200 and len(body.get("rows", ())) == 20 and body.get("total") == USERS
           and body.get("has_more") is True, "data?limit=20: 20 rows of 10000", (status, body))


def count_users(base: str) -> int:
    status, body = hl.http("POST", f"{base}/v1/branches/main/query", {"sql": "SELECT COUNT(*) AS n FROM users"})
    expect(status == 200, "COUNT(*) answers 200", (status, body))
    return int(body["rows"][0]["n"])


# ---------------------------------------------------------------- measuring
@dataclass
class Run:
    target: hl.Target
    result: hl.LoadResult


@dataclass
class Settings:
    connections: list[int]
    duration: float
    warmup: float
    generator: str
    wrk_threads: int
    py_spy: str | None = None


def progress(msg: str) -> None:
    if c is not None:
        c.progress(msg)
    else:
        print(f"  {msg}", file=sys.stderr, flush=True)


def measure(port: int, target: hl.Target, s: Settings, runs: list[Run]) -> None:
    """Warm up (uncounted), then one bounded run per connection count. Insert runs get
    their own id ranges so every request inserts a new row."""
    unique = target.body is not None and "{id}" in target.body and not target.id_modulus
    offset = len([r for r in runs if r.target.name == target.name])
    if s.warmup > 0:
        warm = dataclasses.replace(target, id_start=target.id_start + 900 * INSERT_ID_BASE) if unique else target
        hl.run_load(HOST, port, warm, max(s.connections), s.warmup, generator=s.generator,
                    wrk_threads=s.wrk_threads)
    for k, conns in enumerate(s.connections):
        t = dataclasses.replace(target, id_start=target.id_start + (offset + k) * INSERT_ID_BASE) if unique else target
        progress(f"http: {target.name} c={conns} for {s.duration:g}s ...")
        r = hl.run_load(HOST, port, t, conns, s.duration, generator=s.generator, wrk_threads=s.wrk_threads)
        runs.append(Run(target, r))


def machine_line() -> str:
    if c is not None:
        return c.machine_line()
    return (f"machine: {platform.system()} {platform.release()} {platform.machine()} | "
            f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} | "
            f"Python {platform.python_version()} ({platform.python_implementation()})")


def generator_line(generator: str, wrk_threads: int) -> str:
    wrk = hl.have_wrk()
    if generator != "python" and wrk is not None:
        version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
        return f"load: {wrk} ({' '.join(version).strip()}), {wrk_threads} thread(s), keep-alive, --timeout 5s"
    return "load: python asyncio keep-alive generator (http_load.py; it competes with the server for CPU)"


def _fmt_rps(x: float) -> str:
    return c.fmt_rate(x) if c is not None else f"{x:.0f}/s"


def print_results(runs: list[Run]) -> None:
    headers = ("target", "conns", "req/s", "p50 ms", "p99 ms", "requests", "errors")
    rows = [(r.target.name, r.result.connections, _fmt_rps(r.result.rps), f"{r.result.p50_ms:.2f}",
             f"{r.result.p99_ms:.2f}", r.result.requests, r.result.errors_text()) for r in runs]
    if c is not None:
        c.print_table(headers, rows, title="HTTP on loopback (closed loop: one request in flight per connection)")
    else:
        print("\nHTTP on loopback")
        for row in [headers, *rows]:
            print("  ".join(str(x) for x in row))


def find(runs: list[Run], target: hl.Target, conns: int) -> hl.LoadResult | None:
    for r in runs:
        if r.target.name == target.name and r.result.connections == conns:
            return r.result
    return None


def ratios(runs: list[Run], connections: list[int]) -> list[tuple[str, str]]:
    out = []
    for conns in connections:
        for a, b in ((POINT, KLEIN_OK), (POINT, SQLITE_POINT), (HEALTH, KLEIN_OK), (SQLITE_POINT, KLEIN_OK),
                     (SQLITE_INLINE, KLEIN_OK), (DATA, KLEIN_OK), (INSERT, KLEIN_OK)):
            ra, rb = find(runs, a, conns), find(runs, b, conns)
            if ra and rb and rb.rps:
                out.append((f"c={conns}: {a.name} / {b.name}", f"{ra.rps / rb.rps:.0%}"))
    return out


def checks_for(runs: list[Run], connections: list[int]) -> list[Any]:
    if c is None:
        return []
    conns = max(connections)
    checks = []
    for n in sorted(connections):              # the throughput target holds at every load
        point, klein = find(runs, POINT, n), find(runs, KLEIN_OK, n)
        if point and klein and klein.rps:
            ratio = point.rps / klein.rps
            checks.append(c.Check(f"http: point /query vs bare Klein req/s (c={n})", f"{ratio:.0%}",
                                  f">= {POINT_VS_KLEIN_TARGET:.0%}", ratio >= POINT_VS_KLEIN_TARGET))
    for t in (HEALTH, POINT, DATA, INSERT):
        r = find(runs, t, conns)
        if r:
            checks.append(c.Check(f"http: p99 {t.name} (c={conns})", f"{r.p99_ms:.1f} ms",
                                  f"< {P99_TARGET_MS:g} ms", r.p99_ms < P99_TARGET_MS))
    helios = [r.result for r in runs if r.target in (HEALTH, POINT, DATA, INSERT)]
    errors = sum(r.error_count for r in helios)
    checks.append(c.Check("http: errors over every helios run", str(errors), "0", errors == 0))
    return checks


# ---------------------------------------------------------------- profiling
def profile_targets(server: hl.ServerProcess, s: Settings) -> list[tuple[str, hl.Profile]]:
    """One extra run per helios target under py-spy (not counted in the table)."""
    conns, seconds = max(s.connections), max(1, math.ceil(s.duration))
    out = []
    for target in (POINT, DATA, INSERT, HEALTH):
        t = dataclasses.replace(target, id_start=target.id_start + 800 * INSERT_ID_BASE)
        progress(f"http: profiling {target.name} c={conns} for {seconds}s ...")
        prof = hl.profile_during(s.py_spy, server.pid, seconds,
                                 lambda: hl.run_load(HOST, server.port, t, conns, seconds, generator=s.generator,
                                                     wrk_threads=s.wrk_threads))
        out.append((f"{target.name} c={conns}", prof))
    return out


# Where a request's GIL time goes, by the function that owns each cost (inclusive shares;
# they nest a little: the SQL work runs inside the route's work function).
COST_CENTRES = (
    ("twisted.web Content-Type parse (email package)", "_parseContentType (twisted/web/http.py)"),
    ("request log line (twisted.logger)", "Logger.info (twisted/logger/_logger.py)"),
    ("metrics", "ApiMetrics.observe (helios/api/metrics.py)"),
    ("Klein/werkzeug routing", "MapAdapter.match (werkzeug/routing/map.py)"),
    ("hand-off to the thread pool", "deferToThreadPool (twisted/internet/threads.py)"),
    ("JSON body parse + depth check", "loads_object (helios/api/render.py)"),
    ("JSON render", "dumps (helios/api/render.py)"),
    ("route work in the pool (SQL, storage)", "ThreadPool.callInThreadWithCallback.<locals>.inContext "
                                              "(twisted/python/threadpool.py)"),
    ("  of which EmbeddedDatabase.query", "EmbeddedDatabase.query (helios/embedded.py)"),
    ("  of which EmbeddedDatabase.read_rows", "EmbeddedDatabase.read_rows (helios/embedded.py)"),
    ("  of which EmbeddedDatabase.insert_rows", "EmbeddedDatabase.insert_rows (helios/embedded.py)"),
    ("  of which Store.write (commit)", "Store.write (helios/storage/store.py)"),
)
_PLUMBING = ("twisted/internet/", "twisted/python/", "twisted/application/", "twisted/scripts/", "twisted/_threads/",
             "threading.py", "(twistd)", "twisted/protocols/basic.py")


def print_profile(name: str, prof: hl.Profile, top: int = 18) -> None:
    print(f"\nProfile of the daemon, {name}: {prof.samples} samples holding the GIL "
          f"(GIL busy {prof.gil_busy:.0%} of the run)")
    centres = [(label, prof.total_of.get(func, 0.0)) for label, func in COST_CENTRES]
    print("  cost centres (inclusive): " + "; ".join(f"{label.strip()} {share:.0%}" for label, share in centres
                                                     if share >= 0.005))
    print("  self%  total%  function (top by self time)")
    for func, share in prof.self_share[:top]:
        print(f"  {share:5.1%}  {prof.total_of.get(func, share):6.1%}  {func}")
    print("  inclusive leaders outside the reactor/thread plumbing:")
    leaders = sorted(((f, v) for f, v in prof.total_of.items() if not any(p in f for p in _PLUMBING)),
                     key=lambda kv: -kv[1])
    for func, share in leaders[:top]:
        print(f"  {'':5}  {share:6.1%}  {func}")
    sys.stdout.flush()


# ---------------------------------------------------------------- main
def run_server(name: str, start: Callable[[], hl.ServerProcess], body: Callable[[hl.ServerProcess], None]) -> None:
    server = start()
    try:
        progress(f"http: {name} on port {server.port} (pid {server.pid})")
        body(server)
    except BaseException:
        print(f"\n{name} log (tail):\n{server.log()[-3000:]}", file=sys.stderr)
        raise
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> list[Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    ap.add_argument("--duration", type=float, help="seconds per run (default 10, 3 with --quick)")
    ap.add_argument("--connections", default="1,16", help="comma-separated connection counts (default 1,16)")
    ap.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds before each target (default 1)")
    ap.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1: leave the cores to "
                                                               "the server)")
    ap.add_argument("--profile", nargs="?", const="py-spy", metavar="PY_SPY",
                    help="after the measured runs, profile the daemon with py-spy (--gil) during one more run "
                         "of each helios target at the largest connection count (optional: py-spy's path)")
    ap.add_argument("--serve-baseline", choices=("klein", "sqlite"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return []
    s = Settings(connections=[int(x) for x in args.connections.split(",") if x.strip()],
                 duration=args.duration or (3.0 if args.quick else 10.0), warmup=args.warmup,
                 generator=args.generator, wrk_threads=args.wrk_threads)
    if args.profile:
        s.py_spy = hl.find_py_spy(args.profile)
        if s.py_spy is None:
            ap.error("--profile: py-spy not found (pip install py-spy, or give its path)")
    if not s.connections or min(s.connections) < 1 or s.duration <= 0:
        ap.error("--connections needs positive counts and --duration a positive number")
    if s.generator == "auto" and hl.have_wrk() is None:
        progress("http: wrk not found (apt-get install wrk): using the python asyncio generator")

    title = "bench_http: the REST API (twistd -n helios) vs a bare Klein route and sqlite3 behind Klein"
    if c is not None:
        c.print_header(title)
    else:
        print(f"\n{title}\n{machine_line()}")
    print(generator_line(s.generator, s.wrk_threads))
    print(f"runs: {s.duration:g} s each at {', '.join(map(str, s.connections))} connection(s), "
          f"{s.warmup:g} s warm-up per target; helios served from {helios_root()}")
    tmp = c.make_tmp_dir("http") if c is not None else Path(tempfile.mkdtemp(prefix="helios-http-"))
    runs: list[Run] = []
    profiles: list[tuple[str, hl.Profile]] = []
    try:
        print(f"daemon data dir {tmp / 'data'}" + (f" ({c.mount_of(tmp)[2]} on {c.mount_of(tmp)[1]})"
                                                     if c is not None else ""), flush=True)

        def klein(server: hl.ServerProcess) -> None:
            status, body = hl.http("GET", f"http://{HOST}:{server.port}/ok")
            expect(status == 200 and body == {"ok": True}, "bare Klein answers {ok: true}", (status, body))
            measure(server.port, KLEIN_OK, s, runs)

        def sqlite(server: hl.ServerProcess) -> None:
            for target in (SQLITE_POINT, SQLITE_INLINE):
                check_point(f"http://{HOST}:{server.port}", target.path)
                measure(server.port, target, s, runs)

        def helios(server: hl.ServerProcess) -> None:
            base = f"http://{HOST}:{server.port}"
            progress(f"http: loading {USERS} users through the API ...")
            load_users(base)
            check_helios(base)
            for target in (HEALTH, POINT, DATA):
                measure(server.port, target, s, runs)
            before = count_users(base)
            status, body = hl.http("POST", base + INSERT.path, {"rows": [user_object(INSERT_ID_BASE - 1)]})
            expect(status == 201 and body.get("inserted") == 1, "single-row insert answers 201", (status, body))
            measure(server.port, INSERT, s, runs)
            completed = sum(r.result.requests for r in runs if r.target is INSERT)
            after = count_users(base)
            print(f"inserts: {completed} answered 201 in the counted runs; the table grew by {after - before - 1} "
                  f"rows beside the check row (warm-up and in-flight requests at the end included)")
            expect(after - before - 1 >= completed, "every answered insert is in the table", after - before - 1)
            if s.py_spy:
                profiles.extend(profile_targets(server, s))

        run_server("klein baseline", lambda: start_baseline("klein", tmp), klein)
        run_server("sqlite baseline", lambda: start_baseline("sqlite", tmp), sqlite)
        run_server("helios daemon", lambda: start_daemon(tmp), helios)
    finally:
        if c is not None:
            c.remove_tmp_dir(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print_results(runs)
    rows = ratios(runs, s.connections)
    if c is not None:
        c.print_table(("ratio (req/s)", "value"), rows, title="Ratios, same run")
    else:
        for name, value in rows:
            print(f"{name}: {value}")
    checks = checks_for(runs, s.connections)
    if checks:
        c.print_checks(checks, title="Targets (issue 4)")
    for name, prof in profiles:
        print_profile(name, prof)
    print(machine_line())
    return checks


if __name__ == "__main__":
    main()
