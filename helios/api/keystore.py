"""API keys of the daemon, kept in ``<data_dir>/api_keys.json`` as salted hashes only.

A key reads ``sk_<key id>_<secret>``: the key id (16 hex digits) finds the
record in O(1); the secret is 256 random bits. Only ``HMAC-SHA256(salt, key)``
with a per-key random salt is stored. A slow password hash (scrypt, argon2)
protects low-entropy secrets against guessing; a 256-bit random secret cannot
be guessed at any hashing speed, so a keyed fast hash is as safe here and
costs about a microsecond per request instead of milliseconds. Digests are
compared with :func:`hmac.compare_digest`.

The file is the only shared state between the running server and the ``helios
keys`` CLI (another process). Writers take an ``flock`` on ``api_keys.lock``,
re-read the file, change it and replace it atomically. Readers re-stat the file
at most every ``reload_interval`` seconds and reload when its identity (inode,
mtime, size) changed, so a revocation reaches a running server within a second.
"""
from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence
from uuid import UUID, uuid4

from helios.errors import BadRequest, Conflict, CorruptDatabase, InvalidName, NotFound
from helios.storage.fileio import atomic_write

from .auth import Principal, validate_scopes
from .ratelimit import resolve_clock

__all__ = ["KEY_FILE", "KEY_PREFIX", "KeyStore", "hash_key"]

logger = logging.getLogger("helios.auth")

KEY_FILE = "api_keys.json"
LOCK_FILE = "api_keys.lock"
KEY_PREFIX = "sk_"
FORMAT_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY = re.compile(r"sk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_PUBLIC_FIELDS = ("name", "key_id", "scopes", "user_id", "tenant_id", "client_id",
                  "created_at", "description")


def hash_key(salt: bytes, key: str) -> str:
    """The stored digest of ``key``: HMAC-SHA256 keyed by the per-key salt."""
    return hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()


class KeyStore:
    """Create, list, revoke and look up the API keys of one data directory."""

    def __init__(self, data_dir: str | os.PathLike[str], *, clock: Any = time.time,
                 reload_interval: float = 0.5) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / KEY_FILE
        self._clock = resolve_clock(clock)
        self.reload_interval = float(reload_interval)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}   # key id -> stored record
        # key id -> (salt, digest, principal): swapped whole, so readers need no lock.
        self._entries: dict[str, tuple[bytes, str, Principal]] = {}
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = self._clock()
        records, signature = self._read()  # a corrupt file stops the daemon at start-up
        self._install(records, signature)

    # -- management (the CLI, the daemon's first start) -----------------------------------
    def create(self, name: str, scopes: Sequence[str], *, user_id: str | None = None,
               tenant_id: str = "default", client_id: str | None = None,
               description: str | None = None) -> str:
        """Store a new key and return its plaintext: the only time it exists outside a client."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidName(f"invalid key name {name!r}: use 1-64 letters, digits, '_', '.' "
                              f"or '-', starting with a letter or digit")
        scope_list = validate_scopes(scopes)
        for label, value in (("user_id", user_id), ("tenant_id", tenant_id)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise BadRequest(f"{label} must be a non-empty string")
        if client_id is None:
            client_id = str(uuid4())
        else:
            try:
                client_id = str(UUID(str(client_id)))
            except ValueError:
                raise BadRequest(f"client_id must be a UUID, got {client_id!r}") from None
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = f"{KEY_PREFIX}{key_id}_{secret}"
        salt = secrets.token_bytes(16)
        record = {"name": name, "key_id": key_id, "salt": salt.hex(), "hash": hash_key(salt, key),
                  "scopes": scope_list, "user_id": user_id or name, "tenant_id": tenant_id,
                  "client_id": client_id, "created_at": int(self._clock()),
                  "description": description}
        with self._locked() as records:
            if any(r["name"] == name for r in records.values()):
                raise Conflict(f"an API key named '{name}' already exists")
            records[key_id] = record
        return key

    def revoke(self, name: str) -> None:
        """Delete the key called ``name``; running servers refuse it within ``reload_interval``."""
        with self._locked() as records:
            matches = [kid for kid, r in records.items() if r["name"] == name]
            if not matches:
                raise NotFound(f"no API key named '{name}'")
            for kid in matches:
                del records[kid]

    def list(self) -> list[dict[str, Any]]:
        """Every key's public description (never its hash, salt or plaintext), oldest first."""
        self._refresh(force=True)
        records = sorted(self._records.values(), key=lambda r: (r["created_at"], r["name"]))
        return [{f: r.get(f) for f in _PUBLIC_FIELDS} for r in records]

    def is_empty(self) -> bool:
        self._refresh(force=True)
        return not self._records

    # -- the request path -----------------------------------------------------------------
    def lookup(self, key: str) -> Principal | None:
        """The principal ``key`` stands for, or None if it is unknown, malformed or revoked."""
        self._refresh()
        match = _KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            return None
        entry = self._entries.get(match.group(1))
        if entry is None:
            return None
        salt, digest, principal = entry
        return principal if hmac.compare_digest(hash_key(salt, key), digest) else None

    # -- file handling ----------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        """Reload when the file changed; stat it at most every ``reload_interval`` seconds."""
        now = self._clock()
        if not force and now - self._checked_at < self.reload_interval:
            return
        with self._lock:
            self._checked_at = now
            try:
                if self._stat() == self._signature:
                    return
                records, signature = self._read()
            except (CorruptDatabase, OSError) as exc:
                # Fail closed: a file we cannot read might hold revocations. Remember
                # this version so the error is logged once, not every interval.
                logger.error("%s; refusing every API key until it is fixed", exc)
                try:
                    signature = self._stat()
                except OSError:
                    signature = None
                self._install({}, signature)
                return
            self._install(records, signature)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> tuple[dict[str, dict[str, Any]], tuple[int, int, int] | None]:
        """The file's records and the identity of the version read."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                raw = f.read()
        except FileNotFoundError:
            return {}, None
        try:
            doc = json.loads(raw)
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            records = {r["key_id"]: _checked(r) for r in doc["keys"]}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptDatabase(f"{self.path} is not a valid API key file ({exc})") from None
        return records, (st.st_ino, st.st_mtime_ns, st.st_size)

    def _install(self, records: dict[str, dict[str, Any]],
                 signature: tuple[int, int, int] | None) -> None:
        self._entries = {kid: (bytes.fromhex(r["salt"]), r["hash"],
                               Principal(r["user_id"], r["tenant_id"], r["client_id"],
                                         frozenset(r["scopes"]), "api_key", r["name"]))
                         for kid, r in records.items()}
        self._records = records
        self._signature = signature

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write of the file under an inter-process lock; installs the result."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._lock:
                records, _ = self._read()
                yield records
                doc = {"version": FORMAT_VERSION,
                       "keys": sorted(records.values(), key=lambda r: r["created_at"])}
                atomic_write(self.path, json.dumps(doc, indent=2).encode("utf-8") + b"\n")
                self._install(records, self._stat())
                self._checked_at = self._clock()
        finally:
            os.close(fd)  # closing releases the flock


def _checked(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record with the fields lookups rely on, or a TypeError/KeyError."""
    for field in ("name", "key_id", "salt", "hash", "user_id", "tenant_id", "client_id"):
        if not isinstance(record[field], str):
            raise TypeError(f"field {field!r} of a key record must be a string")
    bytes.fromhex(record["salt"])
    if not isinstance(record["scopes"], list) or not all(isinstance(s, str) for s in record["scopes"]):
        raise TypeError("scopes of a key record must be a list of strings")
    if not isinstance(record.get("created_at", 0), (int, float)):
        raise TypeError("created_at of a key record must be a number")
    record.setdefault("created_at", 0)
    record.setdefault("description", None)
    return record
