"""List markers and sealed page cursors across a root-key rotation, in a process that has not read the rotated key
file yet (a rolling restart: another process made them under the new key), and opened under every readable key
whichever opens them (timing says nothing about which key a cursor is under)."""

from __future__ import annotations

from typing import Any

import pytest

from kmsconsole.core import pagination
from kmsconsole.core.pagination import decode_marker, encode_marker, open_position, seal_position

SCOPE = "ListKeys:111122223333"


def behind_a_rotation(root_key_file: Any) -> tuple[str, str]:
    """A marker and a cursor made under a new key, then this process back on the ring before it, the file
    rotated and not read yet."""
    old_ring = root_key_file.path.read_text()
    root_key_file.rotate()
    new_ring = root_key_file.path.read_text()
    made = encode_marker(SCOPE, 42), seal_position(SCOPE, "after", 7)
    root_key_file.write(old_ring)
    root_key_file.path.write_text(new_ring)
    return made


def test_a_marker_made_under_a_key_this_process_has_not_read_yet_opens(root_key_file: Any) -> None:
    marker, _ = behind_a_rotation(root_key_file)
    assert decode_marker(SCOPE, marker) == 42


def test_a_cursor_made_under_a_key_this_process_has_not_read_yet_opens(root_key_file: Any) -> None:
    _, cursor = behind_a_rotation(root_key_file)
    assert open_position(SCOPE, cursor) == ("after", 7)


def test_a_cursor_is_tried_under_every_readable_key_whichever_opens_it(
    root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key_file.rotate()
    cursor = seal_position(SCOPE, "before", 9)  # under the current key, the first tried
    tried: list[bytes] = []
    real = pagination.AESGCM

    def counting(key: bytes) -> Any:
        tried.append(key)
        return real(key)

    monkeypatch.setattr(pagination, "AESGCM", counting)
    assert open_position(SCOPE, cursor) == ("before", 9)
    assert len(tried) == 2
