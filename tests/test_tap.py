"""helios.tap: options parse as documented and makeService builds the expected tree."""
from __future__ import annotations

import pytest
from twisted.python import usage

from helios import tap


def parse(*args: str) -> tap.Options:
    opts = tap.Options()
    opts.parseOptions(list(args))
    return opts


def test_defaults(monkeypatch):
    monkeypatch.delenv("HELIOSDB_API_HOST", raising=False)
    monkeypatch.delenv("HELIOSDB_API_PORT", raising=False)
    o = parse()
    assert o["data"] == "./data" and o["listen"] == "tcp:8080:interface=127.0.0.1"
    assert o["checkpoint-interval"] == 300 and o["retention"] is None and o["max-body"] == 16 << 20
    assert not o["no-auth"]
    assert (o["rate-limit-config"].max_requests, o["rate-limit-config"].window_secs) == (100, 60)


def test_environment_sets_listen_address_and_limits(monkeypatch):
    monkeypatch.setenv("HELIOSDB_API_HOST", "127.0.0.2")
    monkeypatch.setenv("HELIOSDB_API_PORT", "9090")
    monkeypatch.setenv("HELIOSDB_RATE_LIMIT_MAX_REQUESTS", "500")
    monkeypatch.setenv("HELIOSDB_RATE_LIMIT_WINDOW_SECS", "30")
    o = parse()
    assert o["listen"] == "tcp:9090:interface=127.0.0.2"
    assert (o["rate-limit-config"].max_requests, o["rate-limit-config"].window_secs) == (500, 30)


@pytest.mark.parametrize("text,expected", [("3600", 3600.0), ("90m", 5400.0), ("12h", 43200.0), ("7d", 604800.0),
                                           ("forever", None)])
def test_retention_durations(text, expected):
    assert parse("--retention", text)["retention"] == expected


@pytest.mark.parametrize("args,message", [
    (["--no-auth", "--listen", "tcp:8080:interface=0.0.0.0"], "--no-auth is only allowed on a loopback interface"),
    (["--no-auth", "--listen", "tcp:8080"], "--no-auth is only allowed on a loopback interface"),
    (["--no-auth", "--listen", "tcp6:8080"], "--no-auth is only allowed on a loopback interface"),
    (["--retention", "soon"], "not a duration"),
    (["--rate-limit", "lots"], "--rate-limit"),
    (["--max-body", "0"], "--max-body"),
    (["--checkpoint-interval", "-1"], "--checkpoint-interval"),
    (["--gc-freeze", "-1"], "--gc-freeze"),
    (["--gc-sweep", "soon"], "could not convert"),
])
def test_bad_options_are_usage_errors(args, message):
    with pytest.raises(usage.UsageError) as e:
        parse(*args)
    assert message in str(e.value)


def test_no_auth_on_loopback_and_rate_limit_off():
    o = parse("--no-auth", "--listen", r"tcp6:8081:interface=\:\:1", "--rate-limit", "off")
    assert o["no-auth"] and o["rate-limit-config"] is None
    assert parse("--rate-limit", "10/60/2")["rate-limit-config"].burst == 2


def test_make_service_builds_the_tree_in_order(tmp_path):
    o = parse("--data", str(tmp_path / "d"), "--no-auth", "--listen", "tcp:0:interface=127.0.0.1")
    top = tap.makeService(o)
    names = [s.name for s in top]
    assert names == ["database", "threadpool", "checkpoint", "gc-freeze", "http"]
    assert top.getServiceNamed("checkpoint").interval == 300
    freezer = top.getServiceNamed("gc-freeze")
    assert (freezer.freeze_every, freezer.sweep_every) == (5, 3600)
    assert (tmp_path / "d").is_dir()
    o = parse("--data", str(tmp_path / "e"), "--no-auth", "--checkpoint-interval", "0", "--gc-freeze", "0")
    assert [s.name for s in tap.makeService(o)] == ["database", "threadpool", "http"]


def test_first_start_creates_one_admin_key(tmp_path, monkeypatch):
    monkeypatch.delenv("HELIOSDB_JWT_SECRET", raising=False)
    import io
    from helios.api.auth import AuthMiddleware
    auth = AuthMiddleware.from_env_or_default(str(tmp_path))
    out = io.StringIO()
    key = tap.first_run_admin_key(auth, "tcp:8080:interface=127.0.0.1", out)
    lines = out.getvalue().splitlines()
    assert key.startswith("sk_") and lines[-1] == key and f"X-API-Key: {key}" in lines[1]
    assert auth.authenticate({"x-api-key": key}).scopes == frozenset({"admin"})
    again = AuthMiddleware.from_env_or_default(str(tmp_path))
    assert tap.first_run_admin_key(again, "tcp:8080", io.StringIO()) is None
    monkeypatch.setenv("HELIOSDB_JWT_SECRET", "j" * 40)
    assert tap.first_run_admin_key(AuthMiddleware.from_env_or_default(str(tmp_path / "other")), "tcp:8080") is None


def _twistd(tmp_path, *twistd_args):
    from twisted.scripts.twistd import ServerOptions
    config = ServerOptions()
    config.parseOptions([*twistd_args, "helios", "--data", str(tmp_path / "d"), "--no-auth",
                         "--listen", "tcp:0:interface=127.0.0.1"])
    return tap.makeService(config.subOptions)


def test_request_lines_are_written_by_the_fast_observer_only_when_twistd_logs_to_stdout(tmp_path):
    from twisted.application import service
    from twisted.logger import ILogObserver

    from helios.api.requestlog import RequestLogObserver
    top = _twistd(tmp_path, "-n")
    assert isinstance(top.log_observer, RequestLogObserver)
    app = service.Application("helios")
    top.setServiceParent(app)
    assert app.getComponent(ILogObserver) is top.log_observer          # what twistd's AppLogger.start reads
    assert isinstance(_twistd(tmp_path, "-n", "--logfile", "-").log_observer, RequestLogObserver)
    for args in (("-n", "--logfile", str(tmp_path / "x.log")), ("-n", "--syslog"), ()):
        top = _twistd(tmp_path, *args)
        assert top.log_observer is None, args
        app = service.Application("helios")
        top.setServiceParent(app)
        assert app.getComponent(ILogObserver, None) is None             # twistd's own choice stands
    assert tap.makeService(parse("--data", str(tmp_path / "e"), "--no-auth")).log_observer is None
