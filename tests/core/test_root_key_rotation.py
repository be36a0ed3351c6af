"""Root-key rotation from the operator's side (`manage.py rootkey`, kmsconsole.core.rootkey_rotation): rotate,
re-seal, status and retire, with the dependents of sealed secrets and row MACs, against real requests."""

from __future__ import annotations

import base64
import json
import secrets
import stat
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from grants import services as grant_services
from grants.services.creation import grant_create
from keys.crypto.sealing import root_key_id
from keys.models import Key, KeyMaterial, Tag
from keys.services import aliases, lifecycle, rotation, tags
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors, rootkey_dependents
from kmsconsole.core.context import RequestMeta
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_rotation import root_key_rotate, root_keys_status
from kmsconsole.core.rowmac import MacProtectedRow, is_under_current_root_key
from kmsconsole.operations import OPERATIONS, perform
from policies import services
from policies.models import AccessKey
from policies.selectors import credentials_for
from tests.api.conftest import token_for
from tests.conftest import ALLOW_ALL, Persona, RootKeyFile, as_operator, operator_context
from tests.console.conftest import console_login_for
from tests.core.conftest import Rootkey
from tests.security.test_fuzz_kms import send

pytestmark = pytest.mark.django_db


def kms(client: Client, persona: Persona, operation: str, **params: Any) -> dict[str, Any]:
    response = send(client, persona, f"TrentService.{operation}", json.dumps(params).encode(), {})
    assert response.status_code == 200, response.content
    return json.loads(response.content) if response.content else {}


def encrypt(client: Client, persona: Persona, key: Key, text: bytes) -> str:
    plaintext = base64.b64encode(text).decode()
    return str(kms(client, persona, "Encrypt", KeyId=str(key.key_id), Plaintext=plaintext)["CiphertextBlob"])


def decrypts(client: Client, persona: Persona, blob: str, text: bytes) -> bool:
    return base64.b64decode(kms(client, persona, "Decrypt", CiphertextBlob=blob)["Plaintext"]) == text


def remaining() -> dict[str, int]:
    """What each movable dependent keeps under a previous key (an unmovable one, a token digest, a reseal never
    moves: retire --end-unmovable ends it)."""
    return {
        entry["Name"]: entry["Remaining"] for entry in root_keys_status()["Dependents"] if entry["Movable"]
    }


@pytest.fixture
def key(admin: Persona) -> Key:
    created = as_operator("CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description="rotation"))
    key_id = str(created.key_id)
    as_operator(
        "CreateAlias", lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/rot", target_key_id=key_id)
    )
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(ctx=ctx, key_id=key_id, tags=[{"TagKey": "team", "TagValue": "blue"}]),
    )
    return created  # type: ignore[no-any-return]


def test_ciphertexts_and_access_keys_made_before_a_rotation_work_after_each_step(
    rootkey: Rootkey, admin: Persona, key: Key, client: Client
) -> None:
    before = encrypt(client, admin, key, b"sealed before the rotation")
    old_id = root_keys().current.key_id

    printed = rootkey("rotate")
    new_id = root_keys().current.key_id
    assert new_id != old_id and f"New current root key: {new_id}" in printed and old_id in printed
    assert "No restart is needed" in printed and "Restart" not in printed
    # Between the rotation and the re-seal: the old material and the old access key are under a previous key.
    assert decrypts(client, admin, before, b"sealed before the rotation")
    between = encrypt(client, admin, key, b"sealed between")
    assert remaining()["key material (sealed)"] >= 1 and remaining()["access-key secrets (sealed)"] >= 1

    printed = rootkey("reseal")
    assert f"moved to root key {new_id}, 0 left as they are" in printed
    # Right after the re-seal, with this process's caches built from the rows as they were before it.
    assert decrypts(client, admin, before, b"sealed before the rotation")
    assert decrypts(client, admin, between, b"sealed between")
    assert set(remaining().values()) == {0}

    printed = rootkey("retire")
    assert f"Retired root key: {old_id}" in printed
    assert [key.key_id for key in root_keys().retired] == [old_id] and not root_keys().previous
    # The access key made before the rotation still signs, and every ciphertext still decrypts.
    assert decrypts(client, admin, before, b"sealed before the rotation")
    assert decrypts(client, admin, between, b"sealed between")
    assert kms(client, admin, "DescribeKey", KeyId="alias/rot")["KeyMetadata"]["KeyId"] == str(key.key_id)


def test_status_counts_every_kind_and_reseal_moves_each_row_once(
    rootkey: Rootkey, admin: Persona, account: Any, key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One row of every MAC-protected kind (the test fails if a kind is added and no row of it is made here), all
    moved to the current key by one re-seal, and none by a second. An unmovable dependent (token digests) stays
    as it is and is not counted here."""
    unmovable = rootkey_dependents.RootKeyDependent(
        name="zz digests",
        remaining=lambda ring: rootkey_dependents.Remaining(len(ring.previous), "revoke them", movable=False),
    )
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, unmovable.name, unmovable)
    group = as_operator(
        "iam:CreateGroup", lambda ctx: services.group_create(ctx=ctx, account=account, group_name="g")
    )
    as_operator(
        "iam:PutGroupPolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=group, policy_name="p", document=ALLOW_ALL),
    )
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="r")
    )
    as_operator(
        "iam:PutRolePolicy",
        lambda ctx: services.identity_policy_put(ctx=ctx, owner=role, policy_name="p", document=ALLOW_ALL),
    )
    as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=admin.arn, operations=["Encrypt"]
        ),
    )
    as_operator(
        "kmsconsole:RegisterIntegratedService",
        lambda ctx: grant_services.integrated_service_register(
            ctx=ctx, name="ec2.us-east-1.amazonaws.com", principals=[admin.arn]
        ),
    )
    token_for(account, "admin")
    console_login_for(admin)
    protected = [model for model in apps.get_models() if issubclass(model, MacProtectedRow)]
    assert len(protected) >= 14
    for model in protected:
        assert model.objects.exists(), f"make a {model.__name__} row here"
    assert set(remaining().values()) == {0}

    rootkey("rotate")
    counts = remaining()
    assert counts["key material (sealed)"] == KeyMaterial.objects.count()
    assert counts["access-key secrets (sealed)"] == AccessKey.objects.count()
    assert counts["row MACs: keys, with their aliases and tags"] == 3  # the key, its alias, its tag
    assert sum(counts.values()) > 14
    printed = rootkey("status")
    assert "previous" in printed and "Run `manage.py rootkey reseal`" in printed

    first = rootkey("reseal", "--batch-size", "1")
    assert first.splitlines()[-1].endswith(", 0 left as they are.") and not first.splitlines()[-1].startswith(
        "0 "
    )
    assert set(remaining().values()) == {0}
    for model in protected:
        for row in model.objects.all():
            assert is_under_current_root_key(row.mac, row.MAC_KIND, *row.mac_fields()), (model, row.pk)
    assert rootkey("reseal").splitlines()[-1].startswith("0 moved to root key")
    event = AuditEvent.objects.filter(operation="kmsconsole:ResealRootKeys").order_by("seq").first()
    assert event is not None and event.decision == "allowed"
    assert event.response_elements["Moved"] == sum(counts.values())


def test_a_row_tampered_before_the_reseal_stays_failing_is_reported_and_blocks_retire(
    rootkey: Rootkey, admin: Persona, key: Key, client: Client
) -> None:
    rootkey("rotate")
    tag = Tag.objects.get(key=key)
    Tag.objects.filter(pk=tag.pk).update(tag_value="red")  # a database writer, without the MAC key

    with pytest.raises(CommandError, match="verify under no readable root key"):
        rootkey("reseal")
    # Its family was left as it was: the tag and its key are still under the previous key, and still fail.
    assert remaining()["row MACs: keys, with their aliases and tags"] == 3
    assert f"tag pk={tag.pk}" in root_keys_status()["Dependents"][-1]["HowTheyMove"] or any(
        f"tag pk={tag.pk}" in entry["HowTheyMove"] for entry in root_keys_status()["Dependents"]
    )
    response = send(
        client, admin, "TrentService.DescribeKey", json.dumps({"KeyId": str(key.key_id)}).encode(), {}
    )
    assert json.loads(response.content)["__type"] == "KMSInternalException"
    with pytest.raises(CommandError, match=r"row MACs: keys, with their aliases and tags: 3 \(.*tag pk="):
        rootkey("retire")
    assert root_keys().previous

    Tag.objects.filter(pk=tag.pk).update(tag_value="blue")  # put back as it was
    rootkey("reseal")
    assert "Retired root key" in rootkey("retire")
    assert kms(client, admin, "DescribeKey", KeyId=str(key.key_id))["KeyMetadata"]["Enabled"]


def test_the_key_file_stays_0600_with_its_lines_in_order(
    rootkey: Rootkey, root_key_file: RootKeyFile
) -> None:
    current = root_keys().current.secret.hex()
    older, oldest = secrets.token_hex(32), secrets.token_hex(32)
    root_key_file.write(f"# the service's root keys\n{current}\n{older}\nretired:{oldest}\n")
    inode = root_key_file.path.stat().st_ino
    rootkey("rotate")
    assert root_key_file.path.stat().st_ino != inode, (
        "a new file renamed over the old one, never written in place"
    )
    lines = root_key_file.path.read_text().splitlines()
    new = root_keys().current
    assert lines == [new.secret.hex(), "# the service's root keys", current, older, f"retired:{oldest}"]
    assert stat.S_IMODE(root_key_file.path.stat().st_mode) == 0o600
    assert not [path for path in root_key_file.path.parent.iterdir() if path.name.endswith(".tmp")]

    rootkey("reseal")
    rootkey("retire")
    text = root_key_file.path.read_text()
    lines = text.splitlines()
    # A retired key is kept as its id and its audit subkeys: the key itself is no longer in the file.
    assert lines[:2] == [new.secret.hex(), "# the service's root keys"] and len(lines) == 5
    for line, retired in zip(lines[2:], (current, older, oldest), strict=True):
        assert line.startswith(f"retired:{root_key_id(bytes.fromhex(retired)).hex()}:audit-chain/v1=")
        assert retired not in text
    assert stat.S_IMODE(root_key_file.path.stat().st_mode) == 0o600
    assert "No previous root key to retire" in rootkey("retire")


def test_a_ring_in_the_environment_is_not_rotated_or_retired_but_explained(
    rootkey: Rootkey, settings: Any
) -> None:
    settings.KMS_ROOT_KEY, settings.KMS_ROOT_KEY_FILE = root_keys().current.secret.hex(), ""
    with pytest.raises(CommandError) as refused:
        rootkey("rotate")
    message = str(refused.value)
    assert "KMS_ROOT_KEY" in message and "a comma, then the keys it holds now" in message
    assert "restart every process" in message and settings.KMS_ROOT_KEY not in message
    with pytest.raises(CommandError, match="write `retired:` before every key but the first"):
        rootkey("retire")
    assert not AuditEvent.objects.filter(operation="kmsconsole:RotateRootKey", decision="allowed").exists()


def test_no_one_but_the_operator_may_rotate_even_with_every_action_allowed(
    root_key_file: RootKeyFile, make_user: Callable[..., Persona], client: Client
) -> None:
    everything = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["kmsconsole:*", "*"], "Resource": "*"}],
        }
    )
    boss = make_user("boss", everything)
    credentials = credentials_for(boss.access_key_id)
    assert credentials is not None
    before = root_key_file.path.read_text()
    for name in ("kmsconsole:RotateRootKey", "kmsconsole:ResealRootKeys", "kmsconsole:RetireRootKeys"):
        assert OPERATIONS[name].operator_only
        with pytest.raises(errors.AccessDeniedException, match="only the operator"):
            perform(
                name,
                caller=credentials.caller,
                meta=RequestMeta(interface="api"),
                params={},
                service=lambda ctx: root_key_rotate(ctx=ctx),
            )
        event = AuditEvent.objects.filter(operation=name).latest("seq")
        assert (event.decision, event.caller_arn, event.decided_by) == ("denied", boss.arn, "operator-only")
    # The service refuses too, called without perform()'s door.
    context = operator_context("kmsconsole:RotateRootKey")
    context = type(context)(**{**context.__dict__, "caller": credentials.caller})
    with pytest.raises(errors.AccessDeniedException):
        root_key_rotate(ctx=context)
    assert root_key_file.path.read_text() == before
    # No other interface offers them: the AWS endpoint knows no such operation.
    for target in ("TrentService.RotateRootKey", "TrentService.kmsconsole:RotateRootKey"):
        response = send(client, boss, target, b"{}", {})
        assert json.loads(response.content)["__type"] == "UnknownOperationException"


def test_each_step_is_audited_with_key_ids_only(rootkey: Rootkey, admin: Persona) -> None:
    old_id = root_keys().current.key_id
    rootkey("rotate")
    new_id = root_keys().current.key_id
    rootkey("reseal", "--batch-size", "7")
    rootkey("retire")
    events = {
        event.operation: event
        for event in AuditEvent.objects.filter(operation__endswith="RootKey").union(
            AuditEvent.objects.filter(operation__endswith="RootKeys")
        )
    }
    rotated = events["kmsconsole:RotateRootKey"]
    assert rotated.decision == "allowed" and rotated.caller_arn == "kmsconsole:operator/manage.py rootkey"
    assert rotated.response_elements == {"CurrentKeyId": new_id, "PreviousKeyIds": [old_id]}
    assert events["kmsconsole:ResealRootKeys"].request_parameters == {"BatchSize": 7}
    retired = events["kmsconsole:RetireRootKeys"]
    assert retired.response_elements["RetiredKeyIds"] == [old_id]
    # Ids are public and one-way (the secrets watch checks every event for the keys themselves).
    assert new_id == root_key_id(root_keys().current.secret).hex()


def test_a_bad_batch_size_is_refused(rootkey: Rootkey) -> None:
    with pytest.raises(CommandError, match="between 1 and"):
        rootkey("reseal", "--batch-size", "0")


def test_the_checks_warn_while_a_rotation_is_under_way(rootkey: Rootkey) -> None:
    from kmsconsole.core.checks import root_key_rotation_under_way

    assert root_key_rotation_under_way() == []
    rootkey("rotate")
    (warning,) = root_key_rotation_under_way()
    assert (
        warning.id == "kmsconsole.W002" and "under way: run `manage.py rootkey reseal`, then" in warning.msg
    )
    rootkey("reseal")
    rootkey("retire")
    assert root_key_rotation_under_way() == []


def test_rotate_stamps_under_the_old_ring_and_retire_ends_the_unmovable_only_when_asked(
    rootkey: Rootkey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dependent whose items no re-seal can move (a digest of a token that is not kept): `rotate` stamps them
    under the ring as it was, `retire` refuses and says `--end-unmovable` ends them, and with it ends them first."""
    from kmsconsole.core import rootkey_dependents

    stamped: list[str] = []
    items = {"left": 2}

    def left(ring: Any) -> rootkey_dependents.Remaining:
        how = "tokens whose digests need a previous key"
        return rootkey_dependents.Remaining(items["left"], how_they_move=how, movable=False)

    def end(ring: Any) -> int:
        ended, items["left"] = items["left"], 0
        return ended

    fake = rootkey_dependents.RootKeyDependent(
        name="test tokens",
        remaining=left,
        stamp=lambda ring: stamped.append(ring.current.key_id),
        end_unmovable=end,
    )
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, fake.name, fake)
    old_id = root_keys().current.key_id
    rootkey("rotate")
    assert stamped == [old_id]
    rootkey("reseal")
    with pytest.raises(CommandError, match=r"test tokens: 2 \(tokens whose .*--end-unmovable` ends them"):
        rootkey("retire")
    assert items["left"] == 2 and root_keys().previous
    assert "test tokens: 2 ended" in rootkey("retire", "--end-unmovable")
    assert not root_keys().previous


@pytest.mark.parametrize(
    "stop", [KeyboardInterrupt(), errors.KMSInternalException("boom")], ids=["interrupted", "failing"]
)
def test_a_reseal_stopped_halfway_records_what_it_had_committed(
    root_key_file: RootKeyFile, account: Any, monkeypatch: pytest.MonkeyPatch, stop: BaseException
) -> None:
    """Batches commit as they go: a reseal stopped by Ctrl-C or by a later dependent's failure writes a failure
    event with the counts of what it had moved, and lets the interruption through as it is."""
    role = as_operator(
        "iam:CreateRole", lambda ctx: services.role_create(ctx=ctx, account=account, role_name="r")
    )
    root_key_file.rotate()

    def stopped(ring: Any, batch_size: int) -> Any:
        raise stop

    fake = rootkey_dependents.RootKeyDependent(
        name="zz stopped", remaining=lambda ring: rootkey_dependents.Remaining(0), reseal=stopped, order=999
    )
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, fake.name, fake)
    with pytest.raises(KeyboardInterrupt if isinstance(stop, KeyboardInterrupt) else CommandError):
        call_command("rootkey", "reseal", stdout=StringIO())
    role.refresh_from_db()
    assert is_under_current_root_key(role.mac, role.MAC_KIND, *role.mac_fields())  # committed in its batch
    event = AuditEvent.objects.get(operation="kmsconsole:ResealRootKeys")
    assert event.decision == "failed" and event.response_elements
    assert event.response_elements["Moved"] >= 1 and event.response_elements["StoppedIn"] == "zz stopped"
    roles = [e for e in event.response_elements["Dependents"] if e["Name"].startswith("row MACs: IAM roles")]
    assert roles and roles[0]["Moved"] == 1


def test_a_family_whose_children_kept_changing_is_told_to_run_again(
    rootkey: Rootkey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmsconsole.core.rootkey_movers import FAMILY_ATTEMPTS, _FamilyChanged, _retried_family

    def changing() -> rootkey_dependents.Moved:
        raise _FamilyChanged

    fake = rootkey_dependents.RootKeyDependent(
        name="zz changing",
        remaining=lambda ring: rootkey_dependents.Remaining(0),
        reseal=lambda ring, size: _retried_family(changing, "key pk=1"),
    )
    assert FAMILY_ATTEMPTS > 1
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, fake.name, fake)
    with pytest.raises(CommandError) as refused:
        rootkey("reseal")
    assert "families whose children kept changing" in str(refused.value)


def test_rows_hanging_from_keys_lock_a_bounded_number_of_keys_per_batch(
    root_key_file: RootKeyFile, key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmsconsole.core import rootkey_movers

    for _ in range(2):
        as_operator(
            "RotateKeyOnDemand", lambda ctx: rotation.key_rotate_on_demand(ctx=ctx, key_id=str(key.key_id))
        )
    root_key_file.rotate()
    monkeypatch.setattr(rootkey_movers, "PARENT_LOCKS_PER_BATCH", 1)
    pages: list[int] = []
    real = rootkey_movers._retried

    def counted(work: Any) -> Any:
        moved = real(work)
        pages.append(moved.moved)
        return moved

    monkeypatch.setattr(rootkey_movers, "_retried", counted)
    versions = next(
        one for one in rootkey_dependents.dependents() if one.name == "row MACs: key material versions"
    )
    assert versions.reseal(root_keys(), 10_000).moved == 3
    assert pages == [1, 1, 1]
