"""An exact token bucket per caller, with the headers clients need to pace themselves.

Each key (a principal or a client IP) owns a bucket of ``burst`` tokens that
refills continuously at ``max_requests / window_secs`` tokens per second and
starts full. A request takes one token or is refused without taking any.

The clock is injected (any zero-argument callable returning seconds, or an
object with ``.seconds()`` such as ``twisted.internet.task.Clock``) so the
arithmetic is tested exactly. Tokens are floats; comparisons allow 1e-9 of a
token so that, under a fake clock, waiting exactly ``1 / rate`` seconds yields
exactly one token despite binary rounding (0.6 s x 5/3 tokens/s is
0.9999999999999999 in floating point).

Memory stays bounded: a bucket that has been idle long enough to be full again
is indistinguishable from a new one, so it is dropped; beyond ``max_buckets``
the least recently used bucket goes (a flood of distinct keys can then reset
someone's bucket early, which errs towards allowing, never towards refusing).
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["RateDecision", "RateLimitConfig", "RateLimitMiddleware", "resolve_clock"]

_EPSILON = 1e-9
ENV_MAX_REQUESTS = "HELIOSDB_RATE_LIMIT_MAX_REQUESTS"
ENV_WINDOW_SECS = "HELIOSDB_RATE_LIMIT_WINDOW_SECS"


def resolve_clock(clock: Any) -> Callable[[], float]:
    """A zero-argument callable from ``clock`` (a callable or an object with ``.seconds()``)."""
    seconds = getattr(clock, "seconds", None)
    if callable(seconds):
        return seconds
    if callable(clock):
        return clock
    raise TypeError("clock must be a zero-argument callable or have a .seconds() method")


def _num(value: float) -> str:
    """``60`` rather than ``60.0`` in headers; fractions kept when they exist."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class RateLimitConfig:
    """``max_requests`` per ``window_secs`` on average, at most ``burst`` back to back."""

    max_requests: int
    window_secs: float
    burst: int

    def __post_init__(self) -> None:
        for name in ("max_requests", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        window = self.window_secs
        if (isinstance(window, bool) or not isinstance(window, (int, float))
                or not math.isfinite(window) or window <= 0):
            raise ValueError(f"window_secs must be a positive number, got {window!r}")

    @classmethod
    def public(cls) -> RateLimitConfig:
        """Unauthenticated endpoints, keyed by client IP."""
        return cls(30, 60, 5)

    @classmethod
    def authenticated(cls) -> RateLimitConfig:
        """Authenticated requests, keyed by principal."""
        return cls(100, 60, 10)

    @classmethod
    def heavy_operations(cls) -> RateLimitConfig:
        """Merges, large result sets, complex SQL."""
        return cls(10, 60, 2)

    @property
    def rate(self) -> float:
        """Refill in tokens per second."""
        return self.max_requests / self.window_secs

    @property
    def policy(self) -> str:
        """The IETF ``RateLimit-Policy`` value, e.g. ``100;w=60;burst=10``."""
        return f"{self.max_requests};w={_num(self.window_secs)};burst={self.burst}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ,
                 default: RateLimitConfig | None = None) -> RateLimitConfig:
        """``default`` (``authenticated()``) with the environment's max/window over it.

        The burst is kept, but never above ``max_requests``: a configured allowance of
        5 per window must not start with 10 in the bucket.
        """
        base = default or cls.authenticated()
        max_requests, window = base.max_requests, base.window_secs
        raw_max, raw_window = environ.get(ENV_MAX_REQUESTS), environ.get(ENV_WINDOW_SECS)
        if raw_max is not None and raw_max.strip():
            try:
                max_requests = int(raw_max)
            except ValueError:
                raise ValueError(f"{ENV_MAX_REQUESTS} must be a positive integer, "
                                 f"got {raw_max!r}") from None
        if raw_window is not None and raw_window.strip():
            try:
                window = float(raw_window)
            except ValueError:
                raise ValueError(f"{ENV_WINDOW_SECS} must be a positive number of seconds, "
                                 f"got {raw_window!r}") from None
        if max_requests < 1:
            raise ValueError(f"{ENV_MAX_REQUESTS} must be a positive integer, got {raw_max!r}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"{ENV_WINDOW_SECS} must be a positive number of seconds, "
                             f"got {raw_window!r}")
        return cls(max_requests, window, min(base.burst, max_requests))

    @classmethod
    def parse(cls, text: str) -> RateLimitConfig | None:
        """The daemon's ``--rate-limit`` value: ``off`` (None), a preset, or ``MAX/WINDOW/BURST``."""
        value = text.strip().lower()
        presets = {"public": cls.public, "authenticated": cls.authenticated,
                   "heavy": cls.heavy_operations, "heavy_operations": cls.heavy_operations}
        if value == "off":
            return None
        if value in presets:
            return presets[value]()
        usage = (f"invalid rate limit {text!r}: expected off, public, authenticated, heavy "
                 f"or MAX/WINDOW_SECS/BURST (e.g. 100/60/10)")
        parts = value.split("/")
        if len(parts) != 3:
            raise ValueError(usage)
        try:
            max_requests, window, burst = int(parts[0]), float(parts[1]), int(parts[2])
            return cls(max_requests, window, burst)
        except ValueError as exc:
            raise ValueError(f"{usage}: {exc}") from None


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one check, with everything the response headers need.

    ``reset`` is the Unix time the bucket is full again; ``reset_after`` the same
    as seconds from now; ``retry_after`` the whole seconds (rounded up) until one
    token, set only when refused.
    """

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int | None
    reset_after: int = 0
    policy: str = ""

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*``, IETF ``RateLimit``/``RateLimit-Policy`` and, if refused, ``Retry-After``."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": self.policy or str(self.limit),
            "RateLimit": f"limit={self.limit}, remaining={self.remaining}, reset={self.reset_after}",
        }
        if self.retry_after is not None:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimitMiddleware:
    """Token buckets keyed by caller; ``check`` decides and reports one request."""

    def __init__(self, config: RateLimitConfig, *, clock: Any = time.time,
                 max_buckets: int = 100_000, idle_seconds: float | None = None) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be positive")
        self.config = config
        self.clock = resolve_clock(clock)  # public: companion limiters share it
        self._rate = config.rate
        self._burst = float(config.burst)
        self._policy = config.policy
        self._max_buckets = max_buckets
        # Time for an empty bucket to fill: after that any bucket is as good as new.
        full_refill = config.burst / self._rate
        self._idle = full_refill if idle_seconds is None else max(float(idle_seconds), full_refill)
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Buckets currently held (bounded by ``max_buckets``)."""
        return len(self._buckets)

    def check(self, key: str, cost: float = 1.0) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket if it has them; report either way."""
        if not 0 < cost <= self._burst:
            raise ValueError(f"cost must be in (0, {self.config.burst}], got {cost!r}")
        now = self.clock()
        rate, burst = self._rate, self._burst
        with self._lock:
            self._evict_idle(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    self._buckets.popitem(last=False)
                bucket = self._buckets[key] = [burst, now]
            else:
                self._buckets.move_to_end(key)
                elapsed = now - bucket[1]
                if elapsed > 0:  # a clock stepping back refills nothing and loses nothing
                    bucket[0] = min(burst, bucket[0] + elapsed * rate)
                    bucket[1] = now
            allowed = bucket[0] + _EPSILON >= cost
            if allowed:
                bucket[0] = max(0.0, bucket[0] - cost)
            tokens = bucket[0]
        refill = max(0.0, (burst - tokens) / rate)
        retry_after = None if allowed else max(1, math.ceil((cost - tokens) / rate - _EPSILON))
        return RateDecision(
            allowed=allowed, limit=self.config.max_requests,
            remaining=math.floor(tokens + _EPSILON),
            reset=math.ceil(now + refill - _EPSILON), reset_after=math.ceil(refill - _EPSILON),
            retry_after=retry_after, policy=self._policy)

    def _evict_idle(self, now: float) -> None:
        """Drop buckets untouched for the full-refill time (oldest first, amortised O(1))."""
        buckets, idle = self._buckets, self._idle
        while buckets:
            key, bucket = next(iter(buckets.items()))
            if now - bucket[1] < idle:
                return
            del buckets[key]
