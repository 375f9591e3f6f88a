"""AuthMiddleware: header precedence, scopes, the token cache and live key revocation."""
from __future__ import annotations

import logging
from uuid import UUID

import jwt
import pytest

from helios.api.auth import (ANONYMOUS, READ, WRITE, AuthMiddleware, Principal, has_scope,
                             validate_scopes)
from helios.api.keystore import KeyStore
from helios.errors import BadRequest, Conflict, Forbidden, Unauthorized
from helios.sync.auth import INVALID_CREDENTIALS, JwtManager

SECRET = b"k" * 48
NOW = 1_700_000_000.0
CLIENT = UUID("12345678-1234-5678-1234-567812345678")
EMBEDDED_KEY = "sk_test_abc123xyz"


class FakeClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(clock) -> AuthMiddleware:
    return AuthMiddleware(SECRET, clock=clock).with_api_key(
        EMBEDDED_KEY, "keyuser", "keytenant", CLIENT, ["read"], "Production API Key")


@pytest.fixture
def token(clock) -> str:
    return JwtManager(SECRET, clock=clock).generate_token("jwtuser", "jwttenant", CLIENT)


def refused(auth: AuthMiddleware, headers) -> None:
    with pytest.raises(Unauthorized) as info:
        auth.authenticate(headers)
    assert info.value.to_body() == {"status": 401, "error": "Unauthorized",
                                    "message": INVALID_CREDENTIALS}


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every PyJWT verification performed (the cost the cache avoids)."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token, *args, **kwargs):
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


# -- precedence --------------------------------------------------------------------------------
def test_jwt_principal(auth, token):
    assert auth.authenticate({"Authorization": f"Bearer {token}"}) == Principal(
        "jwtuser", "jwttenant", str(CLIENT), frozenset({"sync:read", "sync:write"}), "jwt")


def test_api_key_principal(auth):
    assert auth.authenticate({"X-API-Key": EMBEDDED_KEY}) == Principal(
        "keyuser", "keytenant", str(CLIENT), frozenset({"read"}), "api_key", "Production API Key")


def test_valid_jwt_wins_over_a_valid_key(auth, token):
    got = auth.authenticate({"Authorization": f"Bearer {token}", "X-API-Key": EMBEDDED_KEY})
    assert got.method == "jwt"


def test_valid_jwt_with_a_bad_key_is_accepted(auth, token):
    assert auth.authenticate({"Authorization": f"Bearer {token}", "X-API-Key": "nope"}).method == "jwt"


@pytest.mark.parametrize("authorization", [
    "Bearer not-a-jwt", "Bearer ", "Bearer", "Basic dXNlcjpwYXNz",
    "Bearer " + jwt.encode({"sub": "x"}, b"other-secret-other-secret-other-secret!!"),
])
def test_invalid_jwt_falls_back_to_the_key(auth, authorization):
    got = auth.authenticate({"Authorization": authorization, "X-API-Key": EMBEDDED_KEY})
    assert got.method == "api_key"


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer garbage"}, {"X-API-Key": "sk_wrong"},
    {"Authorization": "Bearer garbage", "X-API-Key": "sk_wrong"}, {"X-API-Key": ""},
    {"Authorization": EMBEDDED_KEY}, {"Authorization": f"Bearer {EMBEDDED_KEY}"},
    {"X-API-Key": EMBEDDED_KEY + "x"}, {"X-API-Key": EMBEDDED_KEY[:-1]},
])
def test_both_failing_is_401_with_the_contract_body(auth, headers):
    refused(auth, headers)


def test_expired_jwt_with_no_key_is_401(auth, token, clock):
    clock.t += 3600 + 31
    refused(auth, {"Authorization": f"Bearer {token}"})
    assert auth.authenticate({"Authorization": f"Bearer {token}",
                              "X-API-Key": EMBEDDED_KEY}).method == "api_key"


@pytest.mark.parametrize("name", ["authorization", "AUTHORIZATION", "aUtHoRiZaTiOn",
                                  b"Authorization"])
def test_authorization_header_name_is_case_insensitive(auth, token, name):
    assert auth.authenticate({name: f"Bearer {token}"}).method == "jwt"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_bearer_scheme_is_case_insensitive(auth, token, scheme):
    assert auth.authenticate({"Authorization": f"{scheme} {token}"}).method == "jwt"


@pytest.mark.parametrize("name", ["x-api-key", "X-API-KEY", "X-Api-Key", b"x-api-key"])
def test_api_key_header_name_is_case_insensitive(auth, name):
    assert auth.authenticate({name: EMBEDDED_KEY}).key_name == "Production API Key"


def test_bytes_values_and_surrounding_whitespace(auth, token):
    assert auth.authenticate({b"authorization": f"  Bearer  {token} ".encode()}).method == "jwt"
    assert auth.authenticate({"X-API-Key": f" {EMBEDDED_KEY}\t"}).method == "api_key"


def test_without_jwt_secret_bearer_tokens_are_not_accepted(clock, token):
    keys_only = AuthMiddleware(clock=clock).with_api_key(EMBEDDED_KEY, "u", "t", CLIENT,
                                                         ["read"], "k")
    refused(keys_only, {"Authorization": f"Bearer {token}"})
    assert keys_only.authenticate({"Authorization": f"Bearer {token}",
                                   "X-API-Key": EMBEDDED_KEY}).method == "api_key"


# -- enabled / anonymous -----------------------------------------------------------------------
def test_nothing_configured_means_anonymous(tmp_path):
    auth = AuthMiddleware()
    assert not auth.enabled
    assert auth.authenticate({}) is ANONYMOUS
    assert auth.authenticate({"Authorization": "Bearer junk"}) is ANONYMOUS
    assert has_scope(ANONYMOUS, READ) and has_scope(ANONYMOUS, WRITE)
    assert ANONYMOUS.method == "anonymous"


def test_enabled_by_any_credential_source(tmp_path):
    assert AuthMiddleware(SECRET).enabled
    assert AuthMiddleware().with_api_key("key-123456", "u", "t", CLIENT, ["read"], "k").enabled
    with_store = AuthMiddleware().with_key_store(KeyStore(tmp_path))
    assert with_store.enabled
    refused(with_store, {})          # an empty store still closes the door


def test_author_is_user_and_tenant(auth, token):
    assert auth.authenticate({"Authorization": f"Bearer {token}"}).author() == ("jwtuser", "jwttenant")


# -- scopes ------------------------------------------------------------------------------------
SCOPE_MATRIX = [
    ({"read"}, True, False), ({"write"}, False, True), ({"sync:read"}, True, False),
    ({"sync:write"}, False, True), ({"admin"}, True, True), (set(), False, False),
    ({"read", "write"}, True, True), ({"sync:read", "sync:write"}, True, True),
    ({"reader", "sync"}, False, False),
]


def principal(scopes) -> Principal:
    return Principal("u", "t", str(CLIENT), frozenset(scopes), "jwt")


@pytest.mark.parametrize("scopes, can_read, can_write", SCOPE_MATRIX)
def test_scope_matrix(auth, scopes, can_read, can_write):
    p = principal(scopes)
    assert (has_scope(p, READ), has_scope(p, WRITE)) == (can_read, can_write)
    for need, allowed in ((READ, can_read), (WRITE, can_write)):
        if allowed:
            auth.authorize(p, need)
        else:
            with pytest.raises(Forbidden) as info:
                auth.authorize(p, need)
            assert info.value.status == 403
            assert f"requires the '{need}' scope" in info.value.message


def test_literal_scopes_and_admin():
    assert has_scope(principal({"sync:read"}), "sync:read")
    assert has_scope(principal({"admin"}), "sync:write")
    assert not has_scope(principal({"read"}), "admin")


def test_validate_scopes():
    assert validate_scopes(["read", "write", "read"]) == ["read", "write"]
    for bad in ([], ["rread"], "read", [None]):
        with pytest.raises(BadRequest):
            validate_scopes(bad)


# -- embedded keys -----------------------------------------------------------------------------
def test_with_api_key_chains_and_keeps_only_a_hash(auth):
    def strings(obj, seen=None):
        seen = seen if seen is not None else set()
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
        elif isinstance(obj, bytes):
            yield obj.decode("latin-1")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                yield from strings(k, seen)
                yield from strings(v, seen)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                yield from strings(item, seen)
        elif hasattr(obj, "__dict__"):
            yield from strings(vars(obj), seen)

    assert all(EMBEDDED_KEY not in s for s in strings(auth))


def test_with_api_key_refuses_duplicates_and_bad_input(auth):
    with pytest.raises(Conflict):
        auth.with_api_key(EMBEDDED_KEY, "u", "t", CLIENT, ["read"], "another name")
    with pytest.raises(Conflict):
        auth.with_api_key("sk_other_key_123", "u", "t", CLIENT, ["read"], "Production API Key")
    for key in ("", " padded ", "line\nbreak"):
        with pytest.raises(BadRequest):
            auth.with_api_key(key, "u", "t", CLIENT, ["read"], "k2")
    with pytest.raises(BadRequest):
        auth.with_api_key("sk_fine_key_1234", "u", "t", CLIENT, ["superuser"], "k3")


# -- the token cache ---------------------------------------------------------------------------
def test_verified_tokens_are_cached_briefly(clock, token, decodes):
    auth = AuthMiddleware(SECRET, clock=clock, cache_seconds=5)
    for _ in range(10):
        auth.authenticate({"Authorization": f"Bearer {token}"})
    assert len(decodes) == 1
    clock.t += 5
    auth.authenticate({"Authorization": f"Bearer {token}"})
    assert len(decodes) == 2


def test_cache_never_outlives_the_token(clock, decodes):
    auth = AuthMiddleware(SECRET, clock=clock, cache_seconds=1000)
    short = JwtManager(SECRET, clock=clock).generate_token("u", "t", CLIENT, ttl=10)
    auth.authenticate({"Authorization": f"Bearer {short}"})
    clock.t += 20                    # past exp, within leeway: verified again, still valid
    assert auth.authenticate({"Authorization": f"Bearer {short}"}).user_id == "u"
    assert len(decodes) == 2
    clock.t += 21                    # exp + 41 s: refused although cache_seconds is 1000
    refused(auth, {"Authorization": f"Bearer {short}"})


def test_cache_is_bounded(clock, decodes):
    auth = AuthMiddleware(SECRET, clock=clock, cache_size=2)
    issuer = JwtManager(SECRET, clock=clock)
    tokens = [issuer.generate_token(f"u{i}", "t", CLIENT) for i in range(3)]
    for t in tokens + tokens:
        auth.authenticate({"Authorization": f"Bearer {t}"})
    assert len(decodes) == 6         # a cache of 2 cycling through 3 tokens never hits
    auth.authenticate({"Authorization": f"Bearer {tokens[2]}"})
    assert len(decodes) == 6         # the most recent one is still cached


def test_invalid_tokens_are_not_cached(auth, clock, decodes):
    for _ in range(3):
        refused(auth, {"Authorization": "Bearer a.b.c"})
    assert len(decodes) == 3


def test_key_store_revocation_is_not_hidden_by_any_cache(tmp_path, clock):
    store = KeyStore(tmp_path, clock=clock, reload_interval=0.5)
    auth = AuthMiddleware(SECRET, clock=clock, cache_seconds=60).with_key_store(store)
    key = store.create("ci", ["read", "write"])
    assert auth.authenticate({"X-API-Key": key}).key_name == "ci"
    KeyStore(tmp_path).revoke("ci")  # the CLI, another process
    clock.t += 0.5
    refused(auth, {"X-API-Key": key})


# -- from the environment ----------------------------------------------------------------------
def test_from_env_without_secret_has_jwt_off(token):
    auth = AuthMiddleware.from_env_or_default(environ={})
    assert not auth.jwt_enabled and not auth.enabled and auth.key_store is None


def test_from_env_with_secret_has_jwt_on(clock):
    auth = AuthMiddleware.from_env_or_default(environ={"HELIOSDB_JWT_SECRET": SECRET.decode()},
                                              clock=clock)
    token = JwtManager(SECRET, clock=clock).generate_token("u", "t", CLIENT)
    assert auth.jwt_enabled and auth.authenticate({"Authorization": f"Bearer {token}"}).user_id == "u"


def test_from_env_with_data_dir_uses_its_key_store(tmp_path):
    key = KeyStore(tmp_path).create("ci", ["read"])
    auth = AuthMiddleware.from_env_or_default(str(tmp_path), environ={})
    assert auth.enabled and not auth.jwt_enabled
    assert auth.authenticate({"X-API-Key": key}).key_name == "ci"


def test_from_env_empty_secret_is_off_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="helios.auth"):
        auth = AuthMiddleware.from_env_or_default(environ={"HELIOSDB_JWT_SECRET": "  "})
    assert not auth.jwt_enabled
    assert "HELIOSDB_JWT_SECRET" in caplog.text
