"""JwtManager: the round trip, and every forgery refused with the contract's one message.

RS256 tokens are signed here with a small pure-Python RSA (PKCS#1 v1.5), so the
algorithm-confusion cases run without the ``cryptography`` package.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
from uuid import UUID

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helios.errors import Unauthorized
from helios.sync.auth import DEFAULT_SCOPES, INVALID_CREDENTIALS, Claims, JwtManager

SECRET = b"0123456789abcdef" * 4  # 64 bytes: long enough for HS512 without warnings
NOW = 1_700_000_000.0
CLIENT = UUID("12345678-1234-5678-1234-567812345678")


class FakeClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    base = {"sub": "user123", "tenant_id": "tenant456", "client_id": str(CLIENT),
            "iat": int(NOW), "exp": int(NOW) + 3600, "scopes": ["sync:read", "sync:write"]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def forge(header: dict, payload: dict | list, sign=None) -> str:
    """A compact JWS built by hand; ``sign(signing_input) -> bytes`` (None: empty signature)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def hs(key: bytes, digest=hashlib.sha256):
    return lambda msg: hmac.new(key, msg, digest).digest()


# -- a tiny RSA, enough to produce genuine RS256 signatures ---------------------------------
def _is_probable_prime(n: int, rng: random.Random) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if _is_probable_prime(candidate, rng):
            return candidate


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _der_int(n: int) -> bytes:
    return _der(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


class RsaKey:
    SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

    def __init__(self, bits: int = 1024, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.e = 65537
        while True:
            p, q = _prime(bits // 2, rng), _prime(bits // 2, rng)
            phi = (p - 1) * (q - 1)
            if p != q and phi % self.e:
                break
        self.n, self.d = p * q, pow(self.e, -1, phi)
        self.size = (self.n.bit_length() + 7) // 8

    def sign_rs256(self, msg: bytes) -> bytes:
        t = self.SHA256_DIGEST_INFO + hashlib.sha256(msg).digest()
        em = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        return pow(int.from_bytes(em, "big"), self.d, self.n).to_bytes(self.size, "big")

    def verify_rs256(self, msg: bytes, sig: bytes) -> bool:
        t = self.SHA256_DIGEST_INFO + hashlib.sha256(msg).digest()
        em = pow(int.from_bytes(sig, "big"), self.e, self.n).to_bytes(self.size, "big")
        return em.endswith(b"\x00" + t) and em.startswith(b"\x00\x01\xff")

    def public_pem(self) -> bytes:
        rsa_oid = _der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")
        rsa_public = _der(0x30, _der_int(self.n) + _der_int(self.e))
        spki = _der(0x30, rsa_oid + _der(0x03, b"\x00" + rsa_public))
        body = base64.b64encode(spki).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines)
                + "\n-----END PUBLIC KEY-----\n").encode()


@pytest.fixture(scope="module")
def rsa() -> RsaKey:
    return RsaKey()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock) -> JwtManager:
    return JwtManager(SECRET, clock=clock)


def assert_refused(manager: JwtManager, token) -> None:
    with pytest.raises(Unauthorized) as info:
        manager.verify(token)
    assert info.value.to_body() == {"status": 401, "error": "Unauthorized",
                                    "message": INVALID_CREDENTIALS}


# -- the round trip --------------------------------------------------------------------------
def test_round_trip_with_default_scopes(manager):
    token = manager.generate_token("user123", "tenant456", CLIENT)
    assert manager.verify(token) == Claims(sub="user123", tenant_id="tenant456",
                                           client_id=str(CLIENT), exp=int(NOW) + 3600,
                                           iat=int(NOW), scopes=DEFAULT_SCOPES)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"


def test_round_trip_with_scopes_and_ttl(manager, clock):
    token = manager.generate_token("u", "t", "client-a", scopes=["read", "admin"], ttl=90)
    got = manager.verify(token)
    assert (got.scopes, got.client_id, got.exp - got.iat) == (("read", "admin"), "client-a", 90)


def test_tokens_are_interoperable_hs256(manager):
    """Any HS256 library with the same secret can read (and issue) our tokens."""
    token = manager.generate_token("u", "t", CLIENT)
    raw = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert raw["sub"] == "u" and raw["scopes"] == list(DEFAULT_SCOPES)
    assert manager.verify(jwt.encode(claims(), SECRET, algorithm="HS256")).sub == "user123"


def test_str_secret_equals_its_utf8_bytes(clock):
    token = JwtManager(SECRET.decode(), clock=clock).generate_token("u", "t", CLIENT)
    assert JwtManager(SECRET, clock=clock).verify(token).sub == "u"


@pytest.mark.parametrize("kwargs, error", [
    ({"scopes": "read"}, TypeError),
    ({"ttl": 0}, ValueError),
    ({"user_id": ""}, ValueError),
    ({"scopes": ["read", 3]}, ValueError),
])
def test_generate_refuses_what_verify_would_reject(manager, kwargs, error):
    args = {"user_id": "u", "tenant_id": "t", "client_id": CLIENT, **kwargs}
    with pytest.raises(error):
        manager.generate_token(**args)


# -- the secret --------------------------------------------------------------------------------
def test_empty_secret_is_refused():
    with pytest.raises(ValueError):
        JwtManager(b"")
    with pytest.raises(ValueError):
        JwtManager("")


def test_public_key_pem_is_refused_as_a_secret(rsa):
    with pytest.raises(ValueError, match="unusable JWT secret"):
        JwtManager(rsa.public_pem())


def test_short_secret_logs_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="helios.auth"):
        JwtManager(b"secret")
    assert [r.name for r in caplog.records] == ["helios.auth"]
    assert "6 bytes" in caplog.records[0].getMessage()


def test_long_secret_logs_nothing(caplog):
    with caplog.at_level(logging.DEBUG, logger="helios.auth"):
        JwtManager(SECRET)
    assert caplog.records == []


# -- forgeries ---------------------------------------------------------------------------------
FORGERIES = {
    "alg none": lambda rsa: forge({"alg": "none", "typ": "JWT"}, claims()),
    "alg None": lambda rsa: forge({"alg": "None", "typ": "JWT"}, claims()),
    "alg none with a signature": lambda rsa: forge({"alg": "none"}, claims(), hs(SECRET)),
    "no alg": lambda rsa: forge({"typ": "JWT"}, claims(), hs(SECRET)),
    "other secret": lambda rsa: jwt.encode(claims(), b"another-secret-of-sufficient-length!!",
                                           algorithm="HS256"),
    "HS384 with the right secret": lambda rsa: jwt.encode(claims(), SECRET, algorithm="HS384"),
    "HS512 with the right secret": lambda rsa: jwt.encode(claims(), SECRET, algorithm="HS512"),
    "HS512 header on an HS256 signature": lambda rsa: forge({"alg": "HS512"}, claims(), hs(SECRET)),
    "RS256": lambda rsa: forge({"alg": "RS256", "typ": "JWT"}, claims(), rsa.sign_rs256),
    "HS/RS confusion": lambda rsa: forge({"alg": "HS256", "typ": "JWT"}, claims(),
                                         hs(rsa.public_pem())),
    "expired beyond leeway": lambda rsa: jwt.encode(claims(exp=int(NOW) - 31), SECRET),
    "missing exp": lambda rsa: jwt.encode(claims(exp=...), SECRET),
    "missing iat": lambda rsa: jwt.encode(claims(iat=...), SECRET),
    "issued in the future": lambda rsa: jwt.encode(claims(iat=int(NOW) + 31), SECRET),
    "not yet valid": lambda rsa: jwt.encode(claims(nbf=int(NOW) + 31), SECRET),
    "missing sub": lambda rsa: jwt.encode(claims(sub=...), SECRET),
    "missing tenant_id": lambda rsa: jwt.encode(claims(tenant_id=...), SECRET),
    "missing client_id": lambda rsa: jwt.encode(claims(client_id=...), SECRET),
    "empty sub": lambda rsa: jwt.encode(claims(sub=""), SECRET),
    "numeric tenant_id": lambda rsa: jwt.encode(claims(tenant_id=456), SECRET),
    "null client_id": lambda rsa: jwt.encode(claims(client_id=None), SECRET),
    "scopes a string": lambda rsa: jwt.encode(claims(scopes="admin"), SECRET),
    "scopes with a number": lambda rsa: jwt.encode(claims(scopes=["read", 1]), SECRET),
    "scopes an object": lambda rsa: jwt.encode(claims(scopes={"admin": True}), SECRET),
    "exp a string": lambda rsa: jwt.encode(claims(exp=str(int(NOW) + 3600)), SECRET),
    "exp a boolean": lambda rsa: jwt.encode(claims(exp=True), SECRET),
    "payload an array": lambda rsa: forge({"alg": "HS256"}, ["sub"], hs(SECRET)),
}


def test_hand_built_token_verifies_when_honest(manager):
    """The forging helpers make valid tokens when nothing is forged: refusals below are real."""
    assert manager.verify(forge({"alg": "HS256", "typ": "JWT"}, claims(), hs(SECRET))).sub == "user123"


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forgery_is_refused(manager, rsa, case):
    assert_refused(manager, FORGERIES[case](rsa))


def test_rsa_helper_really_signs(rsa):
    """The RS256 forgery is a genuine signature, so its refusal is about the algorithm."""
    token = FORGERIES["RS256"](rsa)
    signing_input, _, sig = token.rpartition(".")
    assert rsa.verify_rs256(signing_input.encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))


def test_tampered_payload_keeps_signature_and_is_refused(manager):
    token = manager.generate_token("u", "t", CLIENT, scopes=["read"])
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["scopes"] = ["admin"]
    assert_refused(manager, f"{header}.{b64(json.dumps(body).encode())}.{signature}")
    assert manager.verify(token).scopes == ("read",)  # the original still verifies


def test_tampered_signature_is_refused(manager):
    token = manager.generate_token("u", "t", CLIENT)
    head, _, sig = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 1
    assert_refused(manager, f"{head}.{b64(bytes(raw))}")


@pytest.mark.parametrize("garbage", [
    "", " ", "abc", "a.b.c", "..", "...", "Bearer x", "eyJhbGciOiJIUzI1NiJ9..", "\x00\xff",
    "é.é.é", "x" * 10_000, None, b"a.b.c", 42,
])
def test_garbage_is_refused(manager, garbage):
    assert_refused(manager, garbage)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.builds(".".join, st.lists(st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60),
    min_size=1, max_size=4)))
def test_arbitrary_text_is_refused_with_unauthorized_only(text):
    assert_refused(JwtManager(SECRET, clock=FakeClock()), text)


# -- time and leeway ---------------------------------------------------------------------------
def test_expiry_honours_30_seconds_of_leeway(manager, clock):
    token = manager.generate_token("u", "t", CLIENT, ttl=60)
    exp = int(NOW) + 60
    for t in (exp - 1, exp, exp + 29, exp + 30):
        clock.t = t
        assert manager.verify(token).sub == "u"
    clock.t = exp + 30.001
    assert_refused(manager, token)


def test_leeway_is_configurable(clock):
    strict = JwtManager(SECRET, leeway=0, clock=clock)
    token = strict.generate_token("u", "t", CLIENT, ttl=10)
    clock.t = NOW + 10
    assert strict.verify(token).sub == "u"
    clock.t = NOW + 10.5
    assert_refused(strict, token)


def test_iat_and_nbf_within_leeway_are_accepted(manager):
    token = jwt.encode(claims(iat=int(NOW) + 30, nbf=int(NOW) + 30), SECRET)
    assert manager.verify(token).iat == int(NOW) + 30
