"""The AWS KMS endpoint over real HTTP: boto3 (and hand-signed requests) against the live test server.

Each case also checks the audit event it leaves, and that no secret reached the trail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from django.conf import settings

from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def trail_text() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def error_of(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(ClientError) as raised:
        call()
    return {
        **raised.value.response["Error"],
        "status": raised.value.response["ResponseMetadata"]["HTTPStatusCode"],
    }


def raw_call(
    url: str,
    persona: Persona | None,
    body: bytes,
    target: str = "TrentService.GenerateRandom",
    headers: dict[str, str] | None = None,
    when: datetime | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a hand-made request, signed by botocore's SigV4 signer unless persona is None."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, **(headers or {})},
    )
    if persona is not None:
        signer = SigV4Auth(
            Credentials(persona.access_key_id, persona.secret_access_key, persona.session_token),
            "kms",
            settings.KMS_REGION,
        )
        if when is None:
            signer.add_auth(request)
        else:
            import botocore.auth

            original = botocore.auth.get_current_datetime
            botocore.auth.get_current_datetime = lambda: when.replace(tzinfo=None)
            try:
                signer.add_auth(request)
            finally:
                botocore.auth.get_current_datetime = original
    prepared = request.prepare()
    response = urllib3.request("POST", url, body=body, headers=dict(prepared.headers), retries=False)
    assert response.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert response.headers.get("x-amzn-RequestId")
    return response.status, (json.loads(response.data) if response.data else {})


def test_generate_random_allowed_by_an_identity_policy(kms_client: Any, random_user: Persona) -> None:
    response = kms_client(random_user).generate_random(NumberOfBytes=32)
    assert len(response["Plaintext"]) == 32
    event = last_event()
    assert (event.operation, event.decision, event.interface) == ("GenerateRandom", "allowed", "kms")
    assert event.caller_arn == random_user.arn == "arn:aws:iam::111122223333:user/random-user"
    assert event.access_key_id == random_user.access_key_id
    assert event.request_parameters == {"NumberOfBytes": 32}
    assert event.response_elements == {}
    assert event.request_id == response["ResponseMetadata"]["RequestId"]
    assert "policy-0" in event.reason
    trail = trail_text()
    assert base64.b64encode(response["Plaintext"]).decode() not in trail
    assert random_user.secret_access_key not in trail


def test_generate_random_denied_without_an_allowing_identity_policy(
    kms_client: Any, outsider: Persona
) -> None:
    error = error_of(lambda: kms_client(outsider).generate_random(NumberOfBytes=8))
    assert error["Code"] == "AccessDeniedException"
    assert error["status"] == 400
    assert error["Message"] == (
        "User: arn:aws:iam::111122223333:user/outsider is not authorized to perform: kms:GenerateRandom on "
        "resource: * because no identity-based policy allows the kms:GenerateRandom action"
    )
    event = last_event()
    assert (event.decision, event.error_code, event.caller_arn) == (
        "denied",
        "AccessDeniedException",
        outsider.arn,
    )


def test_role_session_credentials_work(kms_client: Any, role_session: Callable[..., Persona]) -> None:
    from tests.conftest import ALLOW_RANDOM

    session = role_session("app", ALLOW_RANDOM)
    assert len(kms_client(session).generate_random(NumberOfBytes=4)["Plaintext"]) == 4
    assert last_event().caller_arn == "arn:aws:sts::111122223333:assumed-role/app/session-1"


def test_unsigned_request_is_missing_authentication_token(live_server: Any) -> None:
    status, body = raw_call(live_server.url, None, b'{"NumberOfBytes": 8}')
    assert (status, body["__type"], body["message"]) == (
        400,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    event = last_event()
    assert (event.decision, event.error_code, event.caller_arn) == ("failed", body["__type"], "anonymous")


def test_unknown_access_key_is_unrecognized_client(kms_client: Any, random_user: Persona) -> None:
    error = error_of(
        lambda: kms_client(random_user, access_key_id="AKIAAAAAAAAAAAAAAAAA").generate_random(NumberOfBytes=8)
    )
    assert (error["Code"], error["Message"]) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    assert last_event().access_key_id == "AKIAAAAAAAAAAAAAAAAA"


def test_wrong_secret_is_invalid_signature(kms_client: Any, random_user: Persona) -> None:
    wrong = "A" * 40
    error = error_of(
        lambda: kms_client(random_user, secret_access_key=wrong).generate_random(NumberOfBytes=8)
    )
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith("The request signature we calculated does not match")
    assert (last_event().error_code, last_event().access_key_id) == (error["Code"], random_user.access_key_id)
    assert random_user.secret_access_key not in trail_text()


def test_deactivated_access_key_stops_working_at_once(kms_client: Any, random_user: Persona) -> None:
    from django.core.management import call_command

    client = kms_client(random_user)
    client.generate_random(NumberOfBytes=1)
    call_command(
        "iam", "update-access-key", "--access-key-id", random_user.access_key_id, "--status", "Inactive"
    )
    assert error_of(lambda: client.generate_random(NumberOfBytes=1))["Code"] == "UnrecognizedClientException"


def test_incomplete_signature(live_server: Any) -> None:
    status, body = raw_call(
        live_server.url,
        None,
        b"{}",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/kms/aws4_request",
            "X-Amz-Date": "20260101T000000Z",
        },
    )
    assert (status, body["__type"]) == (400, "IncompleteSignatureException")
    assert "requires 'SignedHeaders' parameter" in body["message"]
    assert last_event().error_code == "IncompleteSignatureException"


def test_session_token_problems(kms_client: Any, role_session: Callable[..., Persona]) -> None:
    from tests.conftest import ALLOW_RANDOM

    session = role_session("app", ALLOW_RANDOM)
    missing = error_of(lambda: kms_client(session, session_token=None).generate_random(NumberOfBytes=1))
    assert missing["Code"] == "UnrecognizedClientException"
    forged = error_of(lambda: kms_client(session, session_token="forged").generate_random(NumberOfBytes=1))
    assert forged["Code"] == "UnrecognizedClientException"
    from policies.models import RoleSession

    update_sealed(RoleSession.objects, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    expired = error_of(lambda: kms_client(session).generate_random(NumberOfBytes=1))
    assert (expired["Code"], expired["Message"]) == (
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
    assert last_event().error_code == "ExpiredTokenException"
    assert session.session_token not in trail_text()


def test_replayed_request_outside_the_skew_window(live_server: Any, random_user: Persona) -> None:
    signed_at = datetime.now(UTC) - timedelta(minutes=16)
    status, body = raw_call(live_server.url, random_user, b'{"NumberOfBytes": 8}', when=signed_at)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert body["message"].startswith(f"Signature expired: {signed_at:%Y%m%dT%H%M%SZ} is now earlier than")
    assert last_event().error_code == "InvalidSignatureException"
    # The same request inside the window is fine: it is the time that refuses it, not the signature.
    status, body = raw_call(
        live_server.url, random_user, b'{"NumberOfBytes": 8}', when=datetime.now(UTC) - timedelta(minutes=14)
    )
    assert status == 200 and len(base64.b64decode(body["Plaintext"])) == 8


def test_wrong_region_in_the_credential_scope(kms_client: Any, random_user: Persona) -> None:
    error = error_of(
        lambda: kms_client(random_user, region_name="eu-west-1").generate_random(NumberOfBytes=8)
    )
    assert (error["Code"], error["Message"]) == (
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'eu-west-1'.",
    )


def test_unknown_operation(live_server: Any, random_user: Persona) -> None:
    status, body = raw_call(live_server.url, random_user, b"{}", target="TrentService.MakeCoffee")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = raw_call(live_server.url, random_user, b"{}", target="Other.GenerateRandom")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert (
        last_event().operation == "GenerateRandom" and last_event().error_code == "UnknownOperationException"
    )


def test_a_modeled_operation_this_server_does_not_offer(live_server: Any, random_user: Persona) -> None:
    status, body = raw_call(live_server.url, random_user, b"{}", target="TrentService.CreateCustomKeyStore")
    assert (status, body["__type"]) == (400, "UnsupportedOperationException")


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{not json", "SerializationException", "The request body is not valid JSON."),
        (b"[1, 2]", "SerializationException", "Start of list found where not expected."),
        (
            b"null",
            "SerializationException",
            "The request body is null, not a JSON object: send the operation's parameters as one ({} for none).",
        ),
        (
            b'"str"',
            "SerializationException",
            "The request body is a string, not a JSON object: send the operation's parameters as one ({} for "
            "none).",
        ),
        (
            b"12",
            "SerializationException",
            "The request body is a number, not a JSON object: send the operation's parameters as one ({} for none).",
        ),
        (
            b"true",
            "SerializationException",
            "The request body is a boolean, not a JSON object: send the operation's parameters as one ({} for "
            "none).",
        ),
        (
            b"1.5",
            "SerializationException",
            "The request body is a number, not a JSON object: send the operation's parameters as one ({} for none).",
        ),
        (
            b'{"NumberOfBytes": "eight"}',
            "SerializationException",
            "STRING_VALUE can not be converted to an Integer",
        ),
        (
            b'{"NumberOfBytes": true}',
            "SerializationException",
            "BOOLEAN_VALUE can not be converted to an Integer",
        ),
        (
            b'{"NumberOfBytes": {"a": 1}}',
            "SerializationException",
            "Start of structure or map found where not expected.",
        ),
        (
            b'{"NumberOfBytes": 1025}',
            "ValidationException",
            "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy constraint: "
            "Member must have value less than or equal to 1024",
        ),
        (
            b'{"NumberOfBytes": 0}',
            "ValidationException",
            "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1",
        ),
        (b"{}", "ValidationException", "NumberOfBytes is required."),
    ],
)
def test_bad_input_gets_aws_errors(
    live_server: Any, random_user: Persona, body: bytes, code: str, message: str
) -> None:
    status, answer = raw_call(live_server.url, random_user, body)
    assert (status, answer["__type"], answer["message"]) == (400, code, message)
    event = last_event()
    assert (event.decision, event.error_code, event.caller_arn) == ("failed", code, random_user.arn)


def test_validation_messages_print_values_as_aws_does(live_server: Any, random_user: Persona) -> None:
    body = json.dumps({"CiphertextBlob": "AAAA", "GrantTokens": ["t"] * 11}).encode()
    status, answer = raw_call(live_server.url, random_user, body, target="TrentService.Decrypt")
    assert (status, answer["__type"], answer["message"]) == (
        400,
        "ValidationException",
        "1 validation error detected: Value '[t, t, t, t, t, t, t, t, t, t, t]' at 'grantTokens' failed to "
        "satisfy constraint: Member must have length less than or equal to 10",
    )


def test_boto3_sees_validation_errors_too(kms_client: Any, random_user: Persona) -> None:
    error = error_of(
        lambda: kms_client(random_user, parameter_validation=False).generate_random(NumberOfBytes=2000)
    )
    assert error["Code"] == "ValidationException"


def test_get_on_the_kms_path_is_an_aws_error_not_html(client: Any) -> None:
    response = client.get("/kms/")
    assert response.status_code == 400
    assert json.loads(response.content)["__type"] == "UnknownOperationException"
    assert last_event().error_code == "UnknownOperationException"


def test_an_sdk_pointed_at_kms_without_the_slash_works(live_server: Any, random_user: Persona) -> None:
    """botocore sends `endpoint_url`'s path as given: `/kms` was redirected to `/kms/` with an HTML page, which
    botocore showed as "An error occurred (301)"."""
    client = boto3.client(
        "kms",
        endpoint_url=f"{live_server.url}/kms",
        region_name=settings.KMS_REGION,
        aws_access_key_id=random_user.access_key_id,
        aws_secret_access_key=random_user.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    assert len(client.generate_random(NumberOfBytes=8)["Plaintext"]) == 8
    assert last_event().operation == "GenerateRandom" and last_event().decision == "allowed"


def test_an_sdk_request_at_a_path_with_no_endpoint_gets_aws_json(
    live_server: Any, random_user: Persona
) -> None:
    """Not the console's HTML 404: AWS's JSON, saying where the endpoint is."""
    status, body = raw_call(f"{live_server.url}/v1/kms", random_user, b'{"NumberOfBytes": 8}')
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert body["message"] == "There is no KMS endpoint at this path: send AWS KMS requests to / or /kms/."


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_sdk_request_on_the_root_that_is_not_a_post_gets_aws_json(client: Any, method: str) -> None:
    """The root serves the console to a browser; a request naming a KMS operation is told, as `/kms/` tells it,
    that the endpoint takes POST only (it was redirected to the console's sign-in page)."""
    response = client.generic(method, "/", HTTP_X_AMZ_TARGET="TrentService.GenerateRandom")
    assert response.status_code == 400
    assert json.loads(response.content)["__type"] == "UnknownOperationException"


def test_a_browser_at_an_unknown_path_still_gets_the_page(client: Any) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_get_root_is_the_console(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/signin/")


EXPLAIN = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kmsconsole:Explain", "Resource": "*"}],
    }
)


def explanation(response: Any) -> list[str] | None:
    header = response["ResponseMetadata"]["HTTPHeaders"].get("x-kms-explanation")
    return json.loads(header) if header else None


def add_explain_header(client: Any) -> Any:
    client.meta.events.register(
        "before-sign.kms.*", lambda request, **_: request.headers.add_header("X-Kms-Explain", "1")
    )
    return client


def test_a_caller_allowed_to_explain_gets_the_trace(
    kms_client: Any, make_user: Callable[..., Persona]
) -> None:
    from tests.conftest import ALLOW_RANDOM

    auditor = make_user("auditor", ALLOW_RANDOM, EXPLAIN)
    response = add_explain_header(kms_client(auditor)).generate_random(NumberOfBytes=4)
    trace = explanation(response)
    assert trace and any("policy-0" in line for line in trace)
    assert "allowed" in trace[-1]


def test_the_trace_explains_a_denial_too(kms_client: Any, make_user: Callable[..., Persona]) -> None:
    watcher = make_user("watcher", EXPLAIN)
    client = add_explain_header(kms_client(watcher))
    with pytest.raises(ClientError) as raised:
        client.generate_random(NumberOfBytes=4)
    header = raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-kms-explanation"]
    trace = json.loads(header)
    assert trace[-1].startswith("decision: DENY")
    assert "kms:GenerateRandom" in trace[0]


def test_a_trace_on_a_key_needs_reading_its_policy_and_tags(
    kms_client: Any, make_user: Callable[..., Persona]
) -> None:
    """A trace on a key quotes its policy and, under a condition on aws:ResourceTag, a tag's value, and notes the
    caller's grants on the key: kmsconsole:Explain shows it only to a caller who may also read all three
    (kms:GetKeyPolicy, kms:ListResourceTags, kms:ListGrants)."""
    from keys.services import lifecycle
    from tests.conftest import as_operator

    key = as_operator(
        "CreateKey",
        lambda ctx: lifecycle.key_create(ctx=ctx, tags=[{"TagKey": "project", "TagValue": "zephyr"}]),
    )

    def user_allowed(name: str, *actions: str) -> Persona:
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(actions), "Resource": "*"},
                {  # a condition on the key's tag that the trace quotes with the tag's value
                    "Effect": "Allow",
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:ResourceTag/project": "guess"}},
                },
            ],
        }
        return make_user(name, json.dumps(document), EXPLAIN)

    user = user_allowed("user", "kms:Encrypt")
    response = add_explain_header(kms_client(user)).encrypt(KeyId=str(key.key_id), Plaintext=b"x")
    assert explanation(response) is None
    with pytest.raises(ClientError) as raised:  # a denial's trace would quote the tag's value too
        add_explain_header(kms_client(user)).describe_key(KeyId=str(key.key_id))
    assert "x-kms-explanation" not in raised.value.response["ResponseMetadata"]["HTTPHeaders"]

    rules_only = user_allowed("rules-reader", "kms:Encrypt", "kms:GetKeyPolicy", "kms:ListResourceTags")
    response = add_explain_header(kms_client(rules_only)).encrypt(KeyId=str(key.key_id), Plaintext=b"x")
    assert explanation(response) is None  # not the grants

    reader = user_allowed(
        "reader", "kms:Encrypt", "kms:GetKeyPolicy", "kms:ListResourceTags", "kms:ListGrants"
    )
    response = add_explain_header(kms_client(reader)).encrypt(KeyId=str(key.key_id), Plaintext=b"x")
    trace = explanation(response)
    assert trace and "allowed" in trace[-1]
    assert any("zephyr" in line for line in trace)  # what the first caller was not shown


def test_nobody_else_ever_sees_a_trace(kms_client: Any, random_user: Persona, outsider: Persona) -> None:
    assert explanation(add_explain_header(kms_client(random_user)).generate_random(NumberOfBytes=4)) is None
    with pytest.raises(ClientError) as raised:
        add_explain_header(kms_client(outsider)).generate_random(NumberOfBytes=4)
    assert "x-kms-explanation" not in raised.value.response["ResponseMetadata"]["HTTPHeaders"]


def test_an_oversized_body_is_refused_before_anything_else(live_server: Any, random_user: Persona) -> None:
    body = b'{"NumberOfBytes": 8, "Padding": "' + b"x" * (300 * 1024) + b'"}'
    status, answer = raw_call(live_server.url, random_user, body)
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "larger than" in answer["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"NumberOfBytes": NaN}', "NaN is not a valid JSON number."),
        (b'{"NumberOfBytes": 8, "Extra": Infinity}', "Infinity is not a valid JSON number."),
        (b'{"NumberOfBytes": 8, "CustomKeyStoreId": "a\\u0000b"}', "The request contains a NUL character."),
        # Numbers that overflow to infinity: jsonb refuses them, so the audit write (and the request) failed.
        (b'{"NumberOfBytes": 1e400}', "The request body holds a number too large to represent."),
        (
            b'{"NumberOfBytes": 8, "Extra": [-1e999]}',
            "The request body holds a number too large to represent.",
        ),
        # Lone surrogates: PostgreSQL text cannot hold them (an alias lookup or a stored description failed).
        (
            b'{"NumberOfBytes": 8, "CustomKeyStoreId": "a\\ud800"}',
            "The request contains text that is not valid Unicode (a lone surrogate).",
        ),
        (
            b'{"NumberOfBytes": 8, "Extra": {"\\udfff": 1}}',
            "The request contains text that is not valid Unicode (a lone surrogate).",
        ),
    ],
)
def test_unstorable_json_is_refused_and_still_audited(
    live_server: Any, random_user: Persona, body: bytes, message: str
) -> None:
    status, answer = raw_call(live_server.url, random_user, body)
    assert (status, answer["__type"], answer["message"]) == (400, "SerializationException", message)
    assert last_event().error_code == "SerializationException"


@pytest.mark.parametrize(
    ("blob", "signed_error"),
    [
        ("AQAAAAAAAAAAAAAAAAAAAA==", "InvalidCiphertextException"),  # 16 bytes: shorter than a header
        ("AQAAAAAAAAAAAAAAAAAAAA==AAAA", "SerializationException"),  # not base64 at all
    ],
)
def test_a_ciphertext_too_short_for_its_header_is_a_client_error(
    live_server: Any, random_user: Persona, blob: str, signed_error: str
) -> None:
    """The key id in a ciphertext's header is read (as a cache hint) before authentication: padding within its
    first characters made it fewer bytes than a header, an unaudited 500 for anyone, signed or not."""
    body = json.dumps({"CiphertextBlob": blob}).encode()
    status, answer = raw_call(live_server.url, None, body, target="TrentService.Decrypt")
    assert (status, answer["__type"]) == (400, "MissingAuthenticationTokenException")
    status, answer = raw_call(live_server.url, random_user, body, target="TrentService.Decrypt")
    assert (status, answer["__type"]) == (400, signed_error)
    assert last_event().error_code == signed_error


def test_unknown_members_are_ignored_and_not_audited(live_server: Any, random_user: Persona) -> None:
    status, _ = raw_call(live_server.url, random_user, b'{"NumberOfBytes": 8, "Whatever": {"deep": [1, 2]}}')
    assert status == 200
    assert last_event().request_parameters == {"NumberOfBytes": 8}


def test_an_overlong_access_key_id_is_recorded_not_a_500(live_server: Any) -> None:
    long_id = "AKIA" + "A" * 100
    status, answer = raw_call(live_server.url, None, b"{}", headers={
        "Authorization": f"AWS4-HMAC-SHA256 Credential={long_id}/20260101/us-east-1/kms/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "a" * 64,
        "X-Amz-Date": "20260101T000000Z"})  # fmt: skip
    assert (status, answer["__type"]) == (400, "IncompleteSignatureException")  # x-amz-target is not signed
    assert last_event().access_key_id == long_id
