"""The root key ring (kmsconsole.core.rootkey) and sealing across root keys (keys.crypto.sealing)."""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from keys.crypto.sealing import Sealer, SealingError, derive_subkey, root_key_id, sealed_under
from kmsconsole.core.rootkey import (
    KEPT_WHEN_RETIRED,
    RetiredRootKeyError,
    encode_root_key,
    parse_root_keys,
)

OLD, NEW, OLDER = (secrets.token_bytes(32) for _ in range(3))


def _v1_blob(root: bytes, secret: bytes, bound_to: str) -> bytes:
    """A blob as sealing wrote it before root keys rotated (version 1: no key id, no header in the AAD)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return (
        b"\x01" + nonce + AESGCM(derive_subkey(root, "sealing/v1")).encrypt(nonce, secret, bound_to.encode())
    )


def test_a_ring_lists_current_previous_and_retired_keys_in_order() -> None:
    text = f"# rotated\n{NEW.hex()}\n\n{OLD.hex()}\nretired:{OLDER.hex()}\n"
    ring = parse_root_keys(text, "root.key")
    assert ring is not None
    assert [key.secret for key in ring.readable] == [NEW, OLD]
    assert [key.key_id for key in ring.retired] == [root_key_id(OLDER).hex()]
    assert ring.current.key_id == root_key_id(NEW).hex()
    assert ring.find(root_key_id(OLDER).hex()) is ring.retired[0]
    assert ring.find("0" * 16) is None
    # KMS_ROOT_KEY's form: commas between entries; encode_root_key writes what parse reads.
    again = parse_root_keys(",".join(encode_root_key(key) for key in ring.everything), "KMS_ROOT_KEY")
    assert again == ring


def test_a_retired_key_is_kept_as_its_audit_subkeys_only() -> None:
    """What `rootkey retire` writes holds no key: the old audit links, heads, checkpoints and manifests still
    verify, and nothing sealed or MACed under the key (a database backup's rows) can be opened or forged."""
    ring = parse_root_keys(f"{NEW.hex()}\nretired:{OLDER.hex()}", "root.key")
    assert ring is not None
    written = encode_root_key(ring.retired[0])
    assert OLDER.hex() not in written and written.startswith(f"retired:{root_key_id(OLDER).hex()}:")
    for purpose in KEPT_WHEN_RETIRED:
        assert derive_subkey(OLDER, purpose).hex() in written
    again = parse_root_keys(f"{NEW.hex()}\n{written}", "root.key")
    assert again == ring
    retired = again.retired[0]
    assert retired.secret is None
    for purpose in KEPT_WHEN_RETIRED:
        assert retired.subkey(purpose) == derive_subkey(OLDER, purpose)
    for purpose in ("sealing/v1", "row-integrity", "api-token/v1"):
        with pytest.raises(RetiredRootKeyError):
            retired.subkey(purpose)
    with pytest.raises(RetiredRootKeyError):
        assert not retired.material
    for bad in (written[:-2], written.replace("audit-checkpoint=", "sealing/v1="), written.rsplit(";", 1)[0]):
        with pytest.raises(ImproperlyConfigured, match="malformed"):
            parse_root_keys(f"{NEW.hex()}\n{bad}", "root.key")


def test_a_key_never_appears_in_a_repr() -> None:
    ring = parse_root_keys(NEW.hex(), "root.key")
    assert ring is not None
    assert NEW.hex() not in repr(ring) and NEW.hex() not in str(ring.current)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"retired:{NEW.hex()}\n{OLD.hex()}", "cannot be retired"),
        (f"{NEW.hex()}\nretired:{NEW.hex()}", "twice"),
        (f"{NEW.hex()}\nnot-a-key", "neither hex nor base64"),
        (f"{NEW.hex()}\n{base64.b64encode(OLD[:31]).decode()}", "must be 256 bits"),
    ],
    ids=["retired-first", "listed-twice", "not-a-key", "short-key"],
)
def test_a_bad_ring_is_refused_without_naming_a_key(text: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        parse_root_keys(text, "root.key")
    assert NEW.hex() not in str(refused.value) and OLD.hex() not in str(refused.value)


def test_an_empty_source_holds_no_ring() -> None:
    assert parse_root_keys("# nothing yet\n\n", "root.key") is None


def test_a_blob_names_its_root_key_and_opens_after_a_rotation_until_the_key_is_dropped() -> None:
    before = Sealer([OLD])
    blob = before.seal(b"material", bound_to="key/1")
    assert sealed_under(blob) == root_key_id(OLD)
    after = Sealer([NEW, OLD])
    assert after.open(blob, bound_to="key/1") == b"material"
    assert not after.is_current(blob)
    resealed = after.seal(after.open(blob, bound_to="key/1"), bound_to="key/1")
    assert after.is_current(resealed) and sealed_under(resealed) == root_key_id(NEW)
    with pytest.raises(SealingError, match="not configured"):
        Sealer([NEW]).open(blob, bound_to="key/1")
    with pytest.raises(SealingError):
        after.open(blob, bound_to="key/2")


def test_a_version_1_blob_opens_under_whichever_readable_key_sealed_it() -> None:
    blob = _v1_blob(OLD, b"secret", "access-key/A")
    assert sealed_under(blob) is None
    assert Sealer([NEW, OLD]).open(blob, bound_to="access-key/A") == b"secret"
    assert not Sealer([NEW, OLD]).is_current(blob)
    with pytest.raises(SealingError):
        Sealer([NEW]).open(blob, bound_to="access-key/A")


def test_an_edited_key_id_does_not_open_even_under_a_key_that_would_fit() -> None:
    sealer = Sealer([NEW, OLD])
    blob = Sealer([OLD]).seal(b"secret", bound_to="row")
    relabelled = blob[:1] + root_key_id(NEW) + blob[9:]
    with pytest.raises(SealingError):
        sealer.open(relabelled, bound_to="row")
    for malformed in (b"", b"\x02" + root_key_id(NEW), b"\x03" + blob[1:]):
        with pytest.raises(SealingError, match="malformed"):
            sealer.open(malformed, bound_to="row")


def test_a_reload_moves_sealing_and_subkeys_to_the_new_current_key(root_key_file: Any) -> None:
    from kmsconsole.core import rootkey

    before = rootkey.root_keys().current
    blob = rootkey.sealer().seal(b"material", bound_to="row")
    mac_before = rootkey.readable_macs("purpose", b"message")[0]
    new_id = root_key_file.rotate()
    assert rootkey.root_keys().current.key_id == new_id
    assert rootkey.root_keys().previous == (before,)
    assert rootkey.subkey("purpose") != before.subkey("purpose")
    assert rootkey.sealer().open(blob, bound_to="row") == b"material"
    assert sealed_under(rootkey.sealer().seal(b"x", bound_to="row")) == bytes.fromhex(new_id)
    # A MAC made before the rotation still matches; one under a key no longer configured does not.
    assert rootkey.mac_matches("purpose", b"message", mac_before)
    root_key_file.write(rootkey.root_key().hex())
    assert not rootkey.mac_matches("purpose", b"message", mac_before)
    with pytest.raises(SealingError):
        rootkey.sealer().open(blob, bound_to="row")


def test_a_process_takes_up_a_rewritten_key_file_when_it_meets_the_new_key_or_looks_again(
    root_key_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process rotated (rewrote the file) and sealed or MACed something under the new key: this one opens
    it at once, and takes up the new current key within RECHECK_SECONDS even if it meets nothing."""
    from kmsconsole.core import rootkey, rowmac

    old_text = root_key_file.path.read_text()
    new = secrets.token_bytes(32)
    blob = Sealer([new]).seal(b"material", bound_to="row")
    mac = hmac.new(
        derive_subkey(new, rowmac.SUBKEY_PURPOSE), rowmac.encode("kind", (1,)), "sha256"
    ).hexdigest()
    token = hmac.new(derive_subkey(new, "api-token/v1"), b"token", "sha256").hexdigest()
    root_key_file.path.write_text(new.hex() + "\n" + old_text)  # written by "another process": no reload here
    assert rootkey.root_keys().current.key_id != root_key_id(new).hex()
    assert rootkey.open_sealed(blob, bound_to="row") == b"material"
    assert rootkey.root_keys().current.key_id == root_key_id(new).hex()

    for meets in (
        lambda: rowmac.verify_row_mac(mac, "kind", 1),
        lambda: rootkey.mac_matches("api-token/v1", b"token", token),
    ):
        root_key_file.write(old_text)
        root_key_file.path.write_text(new.hex() + "\n" + old_text)
        assert meets()

    root_key_file.write(old_text)
    root_key_file.path.write_text(new.hex() + "\n" + old_text)
    assert rootkey.root_keys().current.key_id != root_key_id(new).hex()  # not looked yet
    clock = time.monotonic() + rootkey.RECHECK_SECONDS + 1
    monkeypatch.setattr(rootkey.time, "monotonic", lambda: clock)
    assert rootkey.root_keys().current.key_id == root_key_id(new).hex()


def test_a_key_file_rewritten_badly_keeps_the_keys_in_use(root_key_file: Any) -> None:
    from kmsconsole.core import rootkey

    before = rootkey.root_keys()
    root_key_file.path.write_text("not a key\n")
    assert rootkey.refresh_root_keys() is False
    assert rootkey.root_keys() == before
    assert rootkey.refresh_root_keys() is False  # and it does not read the bad file again until it changes
