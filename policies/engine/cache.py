"""An LRU cache of compiled policies keyed by the SHA-256 of their text, so a decision never re-parses JSON.

``compile_key_policy(text)`` and ``compile_identity_policy(text)`` return the same ``CompiledPolicy`` object for
the same text (``str`` and its UTF-8 ``bytes`` are the same text). Invalid texts raise each time and are not
cached. The cache is process-wide, bounded, and safe to use from several threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from .compiled import CompiledPolicy, compile_policy
from .document import PolicyKind, parse_policy

DEFAULT_CACHE_SIZE = 4096
FRONT_CACHE_SIZE = 1024


def policy_digest(text: str | bytes) -> str:
    """The SHA-256 hex digest of the policy text's UTF-8 bytes."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return hashlib.sha256(data).hexdigest()


class PolicyCache:
    """A bounded LRU map from (kind, digest) to ``CompiledPolicy``.

    In front of it sits a small map from the text itself (Python caches a string's hash on the object, so a
    service that keeps its policy strings pays nothing) that skips hashing for texts seen recently.
    """

    def __init__(self, maxsize: int = DEFAULT_CACHE_SIZE, front_size: int = FRONT_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self.front_size = front_size
        self._entries: OrderedDict[tuple[PolicyKind, str], CompiledPolicy] = OrderedDict()
        self._front: dict[PolicyKind, dict[str | bytes, CompiledPolicy]] = {kind: {} for kind in PolicyKind}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str | bytes, kind: PolicyKind) -> CompiledPolicy:
        front = self._front[kind]
        compiled = front.get(text)
        if compiled is not None:
            return compiled
        compiled = self._get(text, kind)
        if len(front) >= self.front_size:
            front.clear()
        front[text] = compiled
        return compiled

    def _get(self, text: str | bytes, kind: PolicyKind) -> CompiledPolicy:
        digest = policy_digest(text)
        key = (kind, digest)
        with self._lock:
            compiled = self._entries.get(key)
            if compiled is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return compiled
            self.misses += 1
        # Stored texts: a key policy may name a deleted principal by its unique id (parse_policy's `stored`).
        compiled = compile_policy(parse_policy(text, kind, stored=True), digest)
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None:
                return existing
            self._entries[key] = compiled
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            for front in self._front.values():
                front.clear()
            self.hits = self.misses = 0

    def info(self) -> dict[str, int]:
        with self._lock:
            return {
                "size": len(self._entries),
                "maxsize": self.maxsize,
                "hits": self.hits,
                "misses": self.misses,
            }


_CACHE = PolicyCache()


def compile_key_policy(text: str | bytes) -> CompiledPolicy:
    """Parse, validate and compile a key policy, cached by content hash. Raises like ``parse_key_policy``, except
    that a deleted principal's unique id is accepted (a stored policy may keep one; it matches no caller): a
    policy about to be written is checked with ``parse_key_policy`` first."""
    return _CACHE.get(text, PolicyKind.KEY)


def compile_identity_policy(text: str | bytes) -> CompiledPolicy:
    """Parse, validate and compile an identity policy, cached by content hash. Raises like ``parse_identity_policy``."""
    return _CACHE.get(text, PolicyKind.IDENTITY)


def clear_policy_cache() -> None:
    """Empty the process-wide cache (tests, or after a bulk policy change)."""
    _CACHE.clear()


def policy_cache_info() -> dict[str, int]:
    """Size, bound, hits and misses of the process-wide cache."""
    return _CACHE.info()
