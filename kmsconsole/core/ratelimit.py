"""Rate limits: failed authentication per source address, and request quotas per account for cryptographic
operations (AWS KMS's "request quotas"), both answered with ThrottlingException.

Both live in each process's memory, never in Redis or the database: failed authentication in the `limits`
library's in-memory sliding-window counters, quotas in a fixed one-second window per account (`QuotaCounters`). A
successful request pays no round trip, only a dictionary lookup for the address check and one counter increment
for a quota (a few microseconds). The trade-off is that each web server process counts on its
own, so every configured limit is divided by KMS_WEB_WORKERS: requests spread over the workers add up to about
the configured rate, while a client that lands on one worker only gets that worker's share (stricter, never
looser, than configured). A restart forgets the counts.

Failed authentication is counted only when it happens (a request that ends without an authenticated caller).
An address (an IPv6 /64, which one client usually holds whole) past KMS_AUTH_FAILURE_LIMIT failures in
KMS_AUTH_FAILURE_WINDOW_SECONDS is refused before any authentication work for the next window; its refusals do
not count, so the block ends a window after the spraying stops being let through.

Throttled requests are audited, but not one by one: `ThrottleLedger` admits the first refusal of a subject (an
address or an account) per KMS_THROTTLE_AUDIT_SECONDS, and the next admitted event carries the number left
unrecorded since. A flood of refused requests therefore costs at most one audit write per subject per interval
per worker; the refusal itself costs no database work (a throttled cryptographic request still reads the
generations its authentication relied on first: it may be answered with no event, so with no check of them at
the audit write, `kmsconsole.awskms.views._recorded_error`).

The same ledger bounds the refusals of a real principal's credentials that go to its account's trail
(`presented_admission`): anyone who knows an access key id, a login name or a token's public prefix can make them,
so per (account, credential, address) the first is recorded, then one per KMS_THROTTLE_AUDIT_SECONDS carrying the
count of those left out. Each of them still counts as a failed authentication of its address.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from kmsconsole.core import errors
from kmsconsole.core.forking import reset_in_forked_child

THROTTLE_MESSAGE = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
ADDRESS_MESSAGE = "Too many failed authentication attempts from this address. Retry later."

# Which quota a cryptographic operation spends (kms-spec §12.2). AWS decides the RSA and ECC families by the key
# used; here Encrypt, Decrypt and ReEncrypt always spend the symmetric quota, because the key is not resolved yet
# when the quota is checked (before any database work).
QUOTA_FAMILIES = {
    **dict.fromkeys(
        (
            "Encrypt",
            "Decrypt",
            "ReEncrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateMac",
            "VerifyMac",
            "GenerateRandom",
        ),
        "symmetric",
    ),
    "Sign": "asymmetric",
    "Verify": "asymmetric",
    "DeriveSharedSecret": "asymmetric",  # AWS: the ECC operations' quota, which Sign and Verify on ECC keys share
    # ML-KEM keys: AWS's quota table predates them; they count as the asymmetric operations they are.
    "Encapsulate": "asymmetric",
    "Decapsulate": "asymmetric",
    "GetPublicKey": "public-key",
    "GenerateDataKeyPair": "data-key-pair",
    "GenerateDataKeyPairWithoutPlaintext": "data-key-pair",
}

# An attacker with many addresses must not grow the tables without bound: past this many entries the expired
# ones are dropped, and further ledger subjects share one entry.
MAX_TRACKED = 100_000

T = TypeVar("T")


class Throttled(errors.ThrottlingException):  # type: ignore[misc,valid-type]
    """A refused request: `subject` names what was over its limit (for the audit ledger), `reason` says why in
    the audit trail, `retry_after` is when to come back (seconds)."""

    def __init__(self, message: str, *, subject: str, reason: str, retry_after: int) -> None:
        super().__init__(message)
        self.subject = subject
        self.reason = reason
        self.retry_after = retry_after


def address_key(address: str) -> str:
    """The unit an address is limited as: the address itself, or the /64 of an IPv6 address."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed.ipv4_mapped or parsed)


def per_worker(limit: int) -> int:
    """This process's share of a limit configured for the whole service (at least 1)."""
    return max(1, math.ceil(limit / max(1, settings.KMS_WEB_WORKERS)))


class ThrottleLedger:
    """Which throttled requests get an audit event (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[float]] = {}  # subject -> [next admission time, unrecorded count]

    def admit(self, subject: str, now: float | None = None) -> int | None:
        """None: do not record this refusal (it is counted). A number: record it, with that many unrecorded
        refusals of the same subject since the last recorded one."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entries.get(subject)
            if entry is None and len(self._entries) >= MAX_TRACKED:
                self._entries = {key: value for key, value in self._entries.items() if value[0] > now}
                if len(self._entries) >= MAX_TRACKED:
                    subject = "(many subjects)"
                    entry = self._entries.get(subject)
            if entry is not None and now < entry[0]:
                entry[1] += 1
                return None
            unrecorded = int(entry[1]) if entry is not None else 0
            self._entries[subject] = [now + settings.KMS_THROTTLE_AUDIT_SECONDS, 0]
            return unrecorded


class QuotaCounters:
    """Cryptographic requests per (quota family, account) in the current second of this process.

    AWS states its request quotas per second. A fixed one-second window costs one dictionary update under a lock
    per request, where the `limits` library's in-memory storage (kept for failed authentication, a rare event)
    starts a timer thread every 10 ms to expire its entries: about 20 µs of CPU per request at 1,000 requests/s
    (measured, issue 9). The window starts over each second, so the table holds only this second's callers. A
    fixed window lets an account reach twice its limit in a one-second span that straddles two windows (the end
    of one and the start of the next); a sliding window would not, at the price above.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._second = -1
        self._counts: dict[tuple[str, str], int] = {}

    def spend(self, family: str, account_id: str, limit: int, now: float | None = None) -> bool:
        """Count one request; False (and not counted) when the account's `limit` for this second is spent."""
        second = int(time.monotonic() if now is None else now)
        key = (family, account_id)
        with self._lock:
            if second != self._second:
                self._second, self._counts = second, {}
            count = self._counts.get(key, 0)
            if count >= limit:
                return False
            self._counts[key] = count + 1
            return True


class _Limits:
    """This process's counters, made in each web server process (each its own)."""

    def __init__(self) -> None:
        self.window = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.blocked: dict[str, float] = {}  # address key -> monotonic time the block ends
        self.ledger = ThrottleLedger()
        self.failure_item: RateLimitItem = RateLimitItemPerSecond(
            per_worker(max(1, settings.KMS_AUTH_FAILURE_LIMIT)), settings.KMS_AUTH_FAILURE_WINDOW_SECONDS
        )
        self.quotas = QuotaCounters()
        self.quota_limits = {
            family: per_worker(rate) for family, rate in settings.KMS_CRYPTO_QUOTAS.items() if rate > 0
        }


class PerProcess(Generic[T]):
    """One `factory()` per process, made on first use: a forked web server worker makes its own, never sharing
    its parent's counts (or their locks, perhaps held at the fork)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        reset_in_forked_child(self._forget_in_child)

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
                value = self._value
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None

    def _forget_in_child(self) -> None:
        # A fresh lock: the parent's may have been held by a thread the child does not have.
        self._lock, self._value = threading.Lock(), None


_state = PerProcess(_Limits)
_limits = _state.get


def reset() -> None:
    """Forget every count (tests, and a settings change)."""
    _state.reset()


def check_address(address: str) -> None:
    """Raise Throttled if `address` failed authentication too often recently. The common case (nothing blocked
    in this process) is one dictionary truth test."""
    state = _limits()
    if not state.blocked or not settings.KMS_RATE_LIMITS:
        return
    key = address_key(address)
    until = state.blocked.get(key)
    if until is None:
        return
    remaining = until - time.monotonic()
    if remaining <= 0:
        state.blocked.pop(key, None)
        return
    raise Throttled(
        ADDRESS_MESSAGE,
        subject=f"address:{key}",
        reason=f"Throttled: more than {settings.KMS_AUTH_FAILURE_LIMIT} failed authentications from {key} in "
        f"{settings.KMS_AUTH_FAILURE_WINDOW_SECONDS} s; its requests are refused until the block ends.",
        retry_after=max(1, math.ceil(remaining)),
    )


def any_blocked() -> bool:
    """Whether this process blocks any address now (one truth test: usually none)."""
    return bool(_limits().blocked)


def note_failed_authentication(address: str) -> None:
    """Count a request from `address` that ended without an authenticated caller; past the limit, block it."""
    if not settings.KMS_RATE_LIMITS or settings.KMS_AUTH_FAILURE_LIMIT <= 0 or not address:
        return
    state = _limits()
    key = address_key(address)
    # The failure that reaches the limit starts the block (as django-axes locks at its limit).
    if state.window.hit(state.failure_item, "auth-failure", key) and state.window.test(
        state.failure_item, "auth-failure", key
    ):
        return
    now = time.monotonic()
    hold_until(state.blocked, key, now + settings.KMS_AUTH_FAILURE_WINDOW_SECONDS, now)


def hold_until(entries: dict[str, float], key: str, until: float, now: float) -> None:
    """`entries[key] = until` (a monotonic time), the entries already past dropped first once MAX_TRACKED are
    held, so a flood of addresses does not grow it without end."""
    if len(entries) >= MAX_TRACKED:
        for past in [entry for entry, ends in entries.items() if ends <= now]:
            del entries[past]
    entries[key] = until


def spend_quota(account_id: str, operation: str) -> None:
    """Count one `operation` against the caller's account quota; raise Throttled when it is spent."""
    family = QUOTA_FAMILIES.get(operation)
    if family is None or not settings.KMS_RATE_LIMITS:
        return
    state = _limits()
    limit = state.quota_limits.get(family)
    if limit is None or state.quotas.spend(family, account_id, limit):
        return
    raise Throttled(
        THROTTLE_MESSAGE,
        subject=f"quota:{family}:{account_id}",
        reason=f"Throttled: account {account_id} exceeded its {family} cryptographic request quota of "
        f"{settings.KMS_CRYPTO_QUOTAS[family]} requests per second.",
        retry_after=1,
    )


def presented_admission(account_id: str, credential: str, address: str) -> int | None:
    """None: do not record this refusal of `account_id`'s `credential` from `address` (it is counted). A number:
    record it, with that many unrecorded since the last one recorded (see the module docstring)."""
    return _limits().ledger.admit(f"presented:{account_id}:{credential}:{address_key(address)}")


def audit_admission(refusal: Throttled) -> str | None:
    """The audit reason for this refusal if it is to be recorded, or None if it is only counted."""
    unrecorded = _limits().ledger.admit(refusal.subject)
    if unrecorded is None:
        return None
    if not unrecorded:
        return refusal.reason
    return f"{refusal.reason} {unrecorded} more refusals were not recorded one by one since the last one recorded."
