"""The ``helios`` console script: keys create/list/revoke and token."""
from __future__ import annotations

import re

import pytest

from helios.api.keystore import KeyStore
from helios.cli import main
from helios.errors import Unauthorized
from helios.sync.auth import JwtManager

SECRET = "s" * 48


@pytest.fixture
def data(tmp_path) -> str:
    return str(tmp_path / "data")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def create(capsys, data: str, name: str = "ci", scopes: str = "read,write", *extra: str) -> str:
    code, out, err = run(capsys, "keys", "create", "--data", data, "--name", name,
                         "--scopes", scopes, *extra)
    assert (code, err) == (0, "")
    return out.rstrip("\n").splitlines()[-1]


def test_create_prints_the_key_alone_on_the_last_line_and_it_authenticates(capsys, data):
    code, out, err = run(capsys, "keys", "create", "--data", data, "--name", "ci",
                         "--scopes", "read,write", "--user", "bot", "--tenant", "acme",
                         "--description", "CI runner")
    assert (code, err) == (0, "")
    lines = out.rstrip("\n").splitlines()
    assert len(lines) > 1 and "X-API-Key" in out          # an explanation first
    key = lines[-1]
    assert re.fullmatch(r"sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", key)
    assert out.count(key) == 1
    principal = KeyStore(data).lookup(key)
    assert (principal.user_id, principal.tenant_id, principal.scopes, principal.key_name) == \
        ("bot", "acme", frozenset({"read", "write"}), "ci")


def test_list_shows_names_scopes_and_dates_but_never_keys(capsys, data):
    key = create(capsys, data, "ci", "read,write", "--description", "runner")
    create(capsys, data, "ops", "admin")
    code, out, err = run(capsys, "keys", "list", "--data", data)
    assert (code, err) == (0, "")
    assert key not in out and key.split("_", 2)[2] not in out
    rows = out.splitlines()
    assert rows[0].split() == ["NAME", "SCOPES", "USER", "TENANT", "CREATED", "DESCRIPTION"]
    assert rows[1].split()[:3] == ["ci", "read,write", "ci"] and rows[1].endswith("runner")
    assert rows[2].split()[:2] == ["ops", "admin"]
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[1])


def test_list_of_an_empty_directory(capsys, data):
    code, out, _ = run(capsys, "keys", "list", "--data", data)
    assert code == 0 and "No API keys" in out


def test_revoke_stops_the_key(capsys, data):
    key = create(capsys, data)
    code, out, err = run(capsys, "keys", "revoke", "--data", data, "--name", "ci")
    assert (code, err) == (0, "") and "Revoked" in out
    assert KeyStore(data).lookup(key) is None
    code, out, err = run(capsys, "keys", "list", "--data", data)
    assert "No API keys" in out


@pytest.mark.parametrize("argv, message", [
    (["keys", "revoke", "--name", "ghost"], "no API key named 'ghost'"),
    (["keys", "create", "--name", "x", "--scopes", "read,wrtie"], "unknown scope 'wrtie'"),
    (["keys", "create", "--name", "bad name", "--scopes", "read"], "invalid key name"),
    (["keys", "create", "--name", "x", "--scopes", "read", "--client", "nope"], "UUID"),
])
def test_errors_are_one_line_on_stderr(capsys, data, argv, message):
    argv = argv[:2] + ["--data", data] + argv[2:]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("helios: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_duplicate_name_is_an_error(capsys, data):
    create(capsys, data)
    code, _, err = run(capsys, "keys", "create", "--data", data, "--name", "ci", "--scopes", "read")
    assert code == 1 and "already exists" in err


def test_unusable_data_directory_is_a_clear_error(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run(capsys, "keys", "create", "--data", str(blocker), "--name", "ci",
                       "--scopes", "read")
    assert code == 1 and err.startswith("helios: error: ") and "Traceback" not in err


def test_token_without_secret_exits_2(capsys, monkeypatch):
    monkeypatch.delenv("HELIOSDB_JWT_SECRET", raising=False)
    code, out, err = run(capsys, "token", "--user", "u", "--tenant", "t")
    assert (code, out) == (2, "")
    assert "set HELIOSDB_JWT_SECRET" in err


def test_token_with_secret_verifies(capsys, monkeypatch):
    monkeypatch.setenv("HELIOSDB_JWT_SECRET", SECRET)
    code, out, err = run(capsys, "token", "--user", "user123", "--tenant", "tenant456",
                         "--scopes", "sync:read,sync:write", "--client",
                         "12345678-1234-5678-1234-567812345678", "--ttl", "120")
    assert (code, err) == (0, "")
    claims = JwtManager(SECRET).verify(out.rstrip("\n").splitlines()[-1])
    assert (claims.sub, claims.tenant_id, claims.client_id, claims.scopes, claims.exp - claims.iat) \
        == ("user123", "tenant456", "12345678-1234-5678-1234-567812345678",
            ("sync:read", "sync:write"), 120)
    with pytest.raises(Unauthorized):
        JwtManager("another secret of decent length, 32+").verify(out.strip())


def test_token_defaults(capsys, monkeypatch):
    monkeypatch.setenv("HELIOSDB_JWT_SECRET", SECRET)
    code, out, _ = run(capsys, "token", "--user", "u", "--tenant", "t")
    claims = JwtManager(SECRET).verify(out.strip())
    assert code == 0 and claims.scopes == ("sync:read", "sync:write") and claims.exp - claims.iat == 3600


@pytest.mark.parametrize("extra, message", [(["--ttl", "0"], "--ttl"),
                                            (["--client", "not-a-uuid"], "--client")])
def test_token_usage_errors(capsys, monkeypatch, extra, message):
    monkeypatch.setenv("HELIOSDB_JWT_SECRET", SECRET)
    code, out, err = run(capsys, "token", "--user", "u", "--tenant", "t", *extra)
    assert (code, out) == (2, "") and message in err


def test_argparse_errors_and_help(capsys):
    assert main([]) == 2
    assert main(["keys", "create", "--name", "x"]) == 2       # --data and --scopes missing
    assert main(["--help"]) == 0
    assert "keys" in capsys.readouterr().out
