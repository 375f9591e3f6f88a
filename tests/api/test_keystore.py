"""KeyStore: hashes only on disk, constant-time checks, and revocation across processes."""
from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from uuid import UUID

import pytest

import helios.api.keystore as keystore_module
from helios.api.auth import Principal
from helios.api.keystore import KEY_FILE, KeyStore
from helios.errors import BadRequest, Conflict, CorruptDatabase, InvalidName, NotFound

KEY_SHAPE = re.compile(r"sk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


class FakeClock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock) -> KeyStore:
    return KeyStore(tmp_path, clock=clock)


def test_created_key_authenticates_as_its_principal(store):
    key = store.create("ci", ["read", "write"], user_id="bot", tenant_id="acme",
                       client_id="12345678-1234-5678-1234-567812345678", description="CI")
    assert KEY_SHAPE.fullmatch(key)
    assert store.lookup(key) == Principal("bot", "acme", "12345678-1234-5678-1234-567812345678",
                                          frozenset({"read", "write"}), "api_key", "ci")


def test_defaults_user_is_the_name_and_client_a_fresh_uuid(store):
    principal = store.lookup(store.create("deploy", ["admin"]))
    assert (principal.user_id, principal.tenant_id) == ("deploy", "default")
    assert UUID(principal.client_id).version == 4


def test_keys_are_unique(store):
    keys = {store.create(f"k{i}", ["read"]) for i in range(20)}
    assert len(keys) == 20 and all(store.lookup(k).key_name for k in keys)


@pytest.mark.parametrize("mutate", [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),   # wrong secret, same key id
    lambda k: k[:3] + "0" * 16 + k[19:],                 # unknown key id
    lambda k: k + "x",                                   # too long
    lambda k: k.upper(),
    lambda k: " " + k,
    lambda k: "",
    lambda k: "sk_",
])
def test_wrong_or_malformed_keys_are_refused(store, mutate):
    key = store.create("ci", ["read"])
    assert store.lookup(mutate(key)) is None
    assert store.lookup(key) is not None


def test_no_plaintext_key_anywhere_in_the_data_directory(tmp_path, store):
    keys = [store.create(f"key{i}", ["read", "write"]) for i in range(5)]
    store.revoke("key3")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {KEY_FILE}
    for path in files:
        data = path.read_bytes()
        for key in keys:
            secret = key.split("_", 2)[2]
            assert key.encode() not in data and secret.encode() not in data, path
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600


def test_stored_record_is_a_salted_hash(tmp_path, store):
    store.create("a", ["read"])
    store.create("b", ["read"])
    records = json.loads((tmp_path / KEY_FILE).read_text())["keys"]
    assert len({r["salt"] for r in records}) == 2
    assert all(len(bytes.fromhex(r["hash"])) == 32 for r in records)


def test_comparison_is_constant_time(store, monkeypatch):
    calls = []
    real = keystore_module.hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keystore_module.hmac, "compare_digest", recording)
    key = store.create("ci", ["read"])
    assert store.lookup(key) is not None
    assert store.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert len(calls) == 2 and all(len(a) == len(b) == 64 for a, b in calls)


def test_list_describes_keys_without_secrets(store, clock):
    key = store.create("ci", ["read", "write"], description="runner")
    clock.t += 10
    store.create("admin", ["admin"])
    listed = store.list()
    assert [k["name"] for k in listed] == ["ci", "admin"]
    assert set(listed[0]) == {"name", "key_id", "scopes", "user_id", "tenant_id", "client_id",
                              "created_at", "description"}
    assert listed[0]["created_at"] == int(clock.t) - 10 and listed[0]["description"] == "runner"
    text = json.dumps(listed)
    raw = json.loads((store.path).read_text())["keys"]
    for secret in [key, key.split("_", 2)[2]] + [r["hash"] for r in raw] + [r["salt"] for r in raw]:
        assert secret not in text


def test_is_empty(store):
    assert store.is_empty()
    store.create("ci", ["read"])
    assert not store.is_empty()
    store.revoke("ci")
    assert store.is_empty()


def test_keys_survive_a_restart(tmp_path, store):
    key = store.create("ci", ["read"])
    assert KeyStore(tmp_path).lookup(key) == store.lookup(key)


def test_missing_directory_is_an_empty_store_and_created_on_first_key(tmp_path):
    store = KeyStore(tmp_path / "new" / "data")
    assert store.is_empty() and store.list() == []
    key = store.create("ci", ["read"])
    assert (tmp_path / "new" / "data" / KEY_FILE).exists() and store.lookup(key)


# -- validation --------------------------------------------------------------------------------
def test_duplicate_name_is_a_conflict(store):
    store.create("ci", ["read"])
    with pytest.raises(Conflict, match="'ci' already exists"):
        store.create("ci", ["write"])
    assert len(store.list()) == 1


def test_revoking_an_unknown_name_is_not_found(store):
    with pytest.raises(NotFound, match="'nope'"):
        store.revoke("nope")


@pytest.mark.parametrize("name", ["", "has space", "-lead", "x" * 65, "a/b", "é"])
def test_bad_names_are_refused(store, name):
    with pytest.raises(InvalidName):
        store.create(name, ["read"])


@pytest.mark.parametrize("kwargs", [
    {"scopes": []}, {"scopes": ["wrtie"]}, {"scopes": "read"}, {"scopes": ["read", None]},
    {"scopes": ["read"], "client_id": "not-a-uuid"}, {"scopes": ["read"], "tenant_id": " "},
    {"scopes": ["read"], "user_id": ""},
])
def test_bad_scopes_and_ids_are_refused(store, kwargs):
    with pytest.raises(BadRequest):
        store.create("ci", **kwargs)
    assert store.is_empty()


# -- revocation across processes ---------------------------------------------------------------
def test_revocation_by_another_instance_is_seen_within_the_reload_interval(tmp_path, clock):
    server = KeyStore(tmp_path, clock=clock, reload_interval=0.5)
    cli = KeyStore(tmp_path)                       # what `helios keys ...` opens
    key = cli.create("ci", ["read"])
    assert server.lookup(key) is None              # not re-checked yet: at most 0.5 s stale
    clock.t += 0.5
    assert server.lookup(key) is not None
    KeyStore(tmp_path).revoke("ci")
    clock.t += 0.25
    assert server.lookup(key) is not None          # within the interval
    clock.t += 0.25
    assert server.lookup(key) is None


def test_file_is_stat_at_most_once_per_interval_and_read_only_when_changed(tmp_path, clock,
                                                                           monkeypatch):
    server = KeyStore(tmp_path, clock=clock, reload_interval=0.5)
    key = server.create("ci", ["read"])
    stats, reads = [], []
    real_stat, real_read = KeyStore._stat, KeyStore._read

    def counted(real, calls):
        def wrapper(self):
            if self is server:
                calls.append(1)
            return real(self)
        return wrapper

    monkeypatch.setattr(KeyStore, "_stat", counted(real_stat, stats))
    monkeypatch.setattr(KeyStore, "_read", counted(real_read, reads))
    base = clock.t
    for i in range(101):
        clock.t = base + i / 100
        assert server.lookup(key) is not None
    assert len(stats) == 2 and reads == []         # 101 lookups over 1 s: two stats, no re-read
    KeyStore(tmp_path).create("other", ["read"])
    clock.t += 0.5
    server.lookup(key)
    assert len(reads) == 1


def test_in_place_edit_is_detected_by_mtime(tmp_path, clock):
    """Same inode, same size: the mtime alone tells the server the file changed."""
    server = KeyStore(tmp_path, clock=clock)
    key = server.create("ci", ["read"])
    path = tmp_path / KEY_FILE
    before = os.stat(path)
    doc = json.loads(path.read_text())
    doc["keys"][0]["hash"] = "0" * 64              # same length: same size
    with open(path, "r+", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    after = os.stat(path)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    clock.t += 0.5
    assert server.lookup(key) is None


def test_concurrent_writers_lose_no_key(tmp_path):
    """Each writer re-reads the file under an inter-process lock before changing it."""
    stores = [KeyStore(tmp_path) for _ in range(8)]
    errors: list[BaseException] = []

    def create(i: int, store: KeyStore) -> None:
        try:
            for j in range(5):
                store.create(f"w{i}-{j}", ["read"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(KeyStore(tmp_path).list()) == 40


def test_stale_instance_does_not_overwrite_newer_keys(tmp_path):
    a, b = KeyStore(tmp_path), KeyStore(tmp_path)
    key_a = a.create("a", ["read"])
    b.create("b", ["read"])                        # b never saw "a" in memory
    assert {k["name"] for k in KeyStore(tmp_path).list()} == {"a", "b"}
    assert b.lookup(key_a) is not None


# -- damaged files -----------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["{", "[]", '{"version": 99, "keys": []}',
                                     '{"version": 1, "keys": [{"name": "x"}]}'])
def test_corrupt_file_stops_start_up(tmp_path, content):
    (tmp_path / KEY_FILE).write_text(content)
    with pytest.raises(CorruptDatabase, match=KEY_FILE):
        KeyStore(tmp_path)


def test_file_corrupted_while_running_fails_closed(tmp_path, clock, caplog):
    server = KeyStore(tmp_path, clock=clock)
    key = server.create("ci", ["read"])
    (tmp_path / KEY_FILE).write_text("{ broken")
    clock.t += 0.5
    with caplog.at_level(logging.ERROR, logger="helios.auth"):
        assert server.lookup(key) is None
        clock.t += 0.5
        assert server.lookup(key) is None
    assert len(caplog.records) == 1 and "refusing every API key" in caplog.text
    (tmp_path / KEY_FILE).unlink()            # the operator repairs the file ...
    fresh = KeyStore(tmp_path).create("ci2", ["read"])
    clock.t += 0.5
    assert server.lookup(fresh) is not None   # ... and the server picks it up
