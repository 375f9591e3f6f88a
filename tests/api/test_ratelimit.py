"""Token bucket arithmetic under fake clocks, the headers, eviction and configuration."""
from __future__ import annotations

import threading

import pytest
from twisted.internet.task import Clock

from helios.api.ratelimit import RateDecision, RateLimitConfig, RateLimitMiddleware

T0 = 1_000_000.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def drain(limiter: RateLimitMiddleware, key: str = "k") -> list[RateDecision]:
    return [limiter.check(key) for _ in range(limiter.config.burst)]


# -- bucket arithmetic -------------------------------------------------------------------------
@pytest.mark.parametrize("config", [RateLimitConfig.public(), RateLimitConfig.authenticated(),
                                    RateLimitConfig.heavy_operations(), RateLimitConfig(7, 3, 4)])
def test_burst_then_refused_then_exactly_one_per_interval(clock, config):
    limiter = RateLimitMiddleware(config, clock=clock)
    decisions = drain(limiter)
    assert [d.allowed for d in decisions] == [True] * config.burst
    assert [d.remaining for d in decisions] == list(range(config.burst - 1, -1, -1))
    assert not limiter.check("k").allowed
    interval = config.window_secs / config.max_requests
    for _ in range(3):
        clock.t += interval * 0.999
        assert not limiter.check("k").allowed       # refusals take nothing ...
        clock.t += interval * 0.001
        assert limiter.check("k").allowed           # ... so the token arrives on time
        assert not limiter.check("k").allowed


def test_buckets_are_per_key(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.public(), clock=clock)
    drain(limiter, "a")
    assert not limiter.check("a").allowed
    assert limiter.check("b").allowed and limiter.check("b").remaining == 3


def test_long_idle_refills_only_to_burst(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock, max_buckets=10)
    drain(limiter)
    clock.t += 3600
    assert [d.allowed for d in drain(limiter)] == [True] * 10
    assert not limiter.check("k").allowed


def test_exact_headers_when_allowed(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    first = limiter.check("k")   # 9 left; full again after 0.6 s
    assert first == RateDecision(allowed=True, limit=100, remaining=9, reset=int(T0) + 1,
                                 retry_after=None, reset_after=1, policy="100;w=60;burst=10")
    assert first.headers() == {
        "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "9",
        "X-RateLimit-Reset": str(int(T0) + 1), "RateLimit-Policy": "100;w=60;burst=10",
        "RateLimit": "limit=100, remaining=9, reset=1"}


def test_exact_headers_when_refused(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    last = drain(limiter)[-1]
    assert (last.remaining, last.reset, last.reset_after) == (0, int(T0) + 6, 6)
    refused = limiter.check("k")
    assert refused.headers() == {
        "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(T0) + 6), "RateLimit-Policy": "100;w=60;burst=10",
        "RateLimit": "limit=100, remaining=0, reset=6", "Retry-After": "1"}


@pytest.mark.parametrize("config, waited, retry_after, reset_after", [
    (RateLimitConfig.public(), 0, 2, 10),            # 0.5 token/s, burst 5
    (RateLimitConfig.public(), 1.5, 1, 9),           # 0.75 token: 0.5 s to go -> 1
    (RateLimitConfig.heavy_operations(), 0, 6, 12),  # 1/6 token/s, burst 2
    (RateLimitConfig.heavy_operations(), 4, 2, 8),   # 2/3 token: 2 s to go
    (RateLimitConfig.heavy_operations(), 5.5, 1, 7),  # 11/12 token: 0.5 s -> rounded up to 1
])
def test_retry_after_and_reset_are_exact(clock, config, waited, retry_after, reset_after):
    limiter = RateLimitMiddleware(config, clock=clock)
    drain(limiter)
    clock.t += waited
    refused = limiter.check("k")
    assert not refused.allowed
    assert refused.retry_after == retry_after
    assert refused.reset_after == reset_after
    assert refused.reset == int(clock.t) + reset_after
    assert refused.headers()["Retry-After"] == str(retry_after)


def test_reset_is_rounded_up_from_a_fractional_now():
    clock = FakeClock(T0 + 0.3)
    decision = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock).check("k")
    assert decision.reset == int(T0) + 1   # full at T0 + 0.9


def test_policy_formats():
    assert RateLimitConfig.public().policy == "30;w=60;burst=5"
    assert RateLimitConfig.heavy_operations().policy == "10;w=60;burst=2"
    assert RateLimitConfig(5, 0.5, 1).policy == "5;w=0.5;burst=1"
    assert RateLimitConfig(5, 2.0, 1).policy == "5;w=2;burst=1"


def test_clock_stepping_back_neither_refills_nor_breaks(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    drain(limiter)
    clock.t -= 100
    assert not limiter.check("k").allowed
    clock.t += 100.6   # 0.6 s after the last real progress: exactly one token
    assert limiter.check("k").allowed
    assert not limiter.check("k").allowed


def test_cost_must_fit_the_bucket(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.heavy_operations(), clock=clock)
    assert limiter.check("k", cost=2).remaining == 0
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError):
            limiter.check("k", cost=bad)


def test_twisted_clock_is_accepted():
    reactor_clock = Clock()
    reactor_clock.advance(T0)
    limiter = RateLimitMiddleware(RateLimitConfig.public(), clock=reactor_clock)
    drain(limiter)
    refused = limiter.check("k")
    assert (refused.allowed, refused.retry_after, refused.reset) == (False, 2, int(T0) + 10)
    reactor_clock.advance(2)
    assert limiter.check("k").allowed
    assert not limiter.check("k").allowed
    assert limiter.clock() == reactor_clock.seconds()


def test_clock_must_be_usable():
    with pytest.raises(TypeError):
        RateLimitMiddleware(RateLimitConfig.public(), clock=42)


# -- memory ------------------------------------------------------------------------------------
def test_many_keys_stay_bounded_by_max_buckets(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.public(), clock=clock, max_buckets=1000)
    for i in range(10_000):
        limiter.check(f"ip:{i}")
        assert len(limiter) <= 1000
    assert len(limiter) == 1000


def test_idle_full_buckets_are_evicted(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    for i in range(10_000):
        limiter.check(f"ip:{i}")
    assert len(limiter) == 10_000
    clock.t += 6   # burst / rate: every bucket is full again
    limiter.check("late")
    assert len(limiter) == 1


def test_a_bucket_is_not_evicted_before_it_is_full(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    drain(limiter, "a")
    clock.t += 5.9     # 9.83 tokens: not yet full
    limiter.check("b")
    assert len(limiter) == 2
    assert limiter.check("a").remaining == 8


def test_idle_seconds_never_evicts_a_refilling_bucket(clock):
    """A shorter idle_seconds would hand out fresh buckets early; it is raised to the refill time."""
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock, idle_seconds=1)
    drain(limiter, "a")
    clock.t += 3
    limiter.check("b")
    assert limiter.check("a").remaining == 4   # 5 tokens refilled, not a new bucket of 10


def test_least_recently_used_goes_first_when_full(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock, max_buckets=2)
    limiter.check("a")
    limiter.check("b")
    limiter.check("a")
    limiter.check("c")                       # evicts b, the least recently used
    assert limiter.check("a").remaining == 7  # a kept its bucket
    assert limiter.check("b").remaining == 9  # b starts again


# -- concurrency -------------------------------------------------------------------------------
def test_threads_together_get_exactly_the_burst_under_a_frozen_clock(clock):
    limiter = RateLimitMiddleware(RateLimitConfig.authenticated(), clock=clock)
    allowed = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        allowed.append(sum(limiter.check("shared").allowed for _ in range(200)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 10


# -- configuration -----------------------------------------------------------------------------
def test_presets():
    assert RateLimitConfig.public() == RateLimitConfig(30, 60, 5)
    assert RateLimitConfig.authenticated() == RateLimitConfig(100, 60, 10)
    assert RateLimitConfig.heavy_operations() == RateLimitConfig(10, 60, 2)
    assert RateLimitConfig.authenticated().rate == pytest.approx(100 / 60)


@pytest.mark.parametrize("args", [(0, 60, 1), (10, 0, 1), (10, 60, 0), (10, -1, 1),
                                  (10, float("nan"), 1), (True, 60, 1), (1.5, 60, 1)])
def test_invalid_configs_are_refused(args):
    with pytest.raises(ValueError):
        RateLimitConfig(*args)


@pytest.mark.parametrize("text, expected", [
    ("off", None), ("OFF", None), (" public ", RateLimitConfig.public()),
    ("authenticated", RateLimitConfig.authenticated()),
    ("heavy", RateLimitConfig.heavy_operations()),
    ("100/60/10", RateLimitConfig(100, 60, 10)), ("5/0.5/1", RateLimitConfig(5, 0.5, 1)),
])
def test_parse(text, expected):
    assert RateLimitConfig.parse(text) == expected


@pytest.mark.parametrize("text", ["fast", "", "1/2", "a/b/c", "0/60/1", "10/-1/1", "10/60/0",
                                  "1/2/3/4"])
def test_parse_errors_say_what_is_expected(text):
    with pytest.raises(ValueError, match="MAX/WINDOW_SECS/BURST"):
        RateLimitConfig.parse(text)


def test_from_env():
    assert RateLimitConfig.from_env({}) == RateLimitConfig.authenticated()
    env = {"HELIOSDB_RATE_LIMIT_MAX_REQUESTS": "200", "HELIOSDB_RATE_LIMIT_WINDOW_SECS": "30"}
    assert RateLimitConfig.from_env(env) == RateLimitConfig(200, 30, 10)
    assert RateLimitConfig.from_env({"HELIOSDB_RATE_LIMIT_WINDOW_SECS": "1.5"}) == \
        RateLimitConfig(100, 1.5, 10)
    assert RateLimitConfig.from_env({"HELIOSDB_RATE_LIMIT_MAX_REQUESTS": "50"},
                                    default=RateLimitConfig.public()) == RateLimitConfig(50, 60, 5)


def test_from_env_caps_burst_at_max_requests():
    assert RateLimitConfig.from_env({"HELIOSDB_RATE_LIMIT_MAX_REQUESTS": "4"}) == \
        RateLimitConfig(4, 60, 4)


@pytest.mark.parametrize("env, name", [
    ({"HELIOSDB_RATE_LIMIT_MAX_REQUESTS": "lots"}, "HELIOSDB_RATE_LIMIT_MAX_REQUESTS"),
    ({"HELIOSDB_RATE_LIMIT_MAX_REQUESTS": "0"}, "HELIOSDB_RATE_LIMIT_MAX_REQUESTS"),
    ({"HELIOSDB_RATE_LIMIT_WINDOW_SECS": "soon"}, "HELIOSDB_RATE_LIMIT_WINDOW_SECS"),
    ({"HELIOSDB_RATE_LIMIT_WINDOW_SECS": "0"}, "HELIOSDB_RATE_LIMIT_WINDOW_SECS"),
    ({"HELIOSDB_RATE_LIMIT_WINDOW_SECS": "inf"}, "HELIOSDB_RATE_LIMIT_WINDOW_SECS"),
])
def test_from_env_errors_name_the_variable(env, name):
    with pytest.raises(ValueError, match=name):
        RateLimitConfig.from_env(env)
