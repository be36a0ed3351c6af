"""Tampered copies of opaque tokens that are certainly different once decoded.

Overwriting a token's last characters with fixed ones leaves it unchanged when they already were those (1 time in
256 for a MAC's last byte), or changes only bits the decoder ignores; flipping a bit of the decoded bytes never does.
"""

import base64


def tampered_urlsafe_b64(token: str) -> str:
    """`token` (unpadded URL-safe base64) with one bit of its last decoded byte flipped."""
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
