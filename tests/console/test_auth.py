"""The console's front door: sign-in throttling (django-axes), session lifetimes, sudo mode, the security headers
(django-csp and Django's), CSRF, and templates that keep the strict Content-Security-Policy possible."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

from kmsconsole import urls as project_urls
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console import urls as console_urls
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.session import LAST_SEEN_AT, SIGNED_IN_AT
from kmsconsole.console.sudo import SUDO_AT, sudo_required
from kmsconsole.operations import OperationContext
from policies.authorization import authorize
from tests.conftest import Persona
from tests.console.conftest import PASSWORD, console_login_for

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-7f3a9c"
TEMPLATES = Path(settings.BASE_DIR) / "templates"


def sign_in(client: Client, username: str, password: str, address: str = "10.0.0.1") -> HttpResponse:
    return client.post("/signin/", {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def login(admin: Persona) -> str:
    """The admin persona's console login; its password is tests.console.conftest.PASSWORD."""
    return console_login_for(admin).get_username()


# --- Sign-in throttling -------------------------------------------------------------------------------------------


def test_sign_in_works_and_stamps_the_session(client: Client, login: str) -> None:
    before = int(time.time())
    response = sign_in(client, login, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client)
    assert client.session[SIGNED_IN_AT] >= before and client.session[LAST_SEEN_AT] >= before


def test_failures_up_to_the_limit_lock_that_user_name_from_that_address(client: Client, login: str) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        refused = sign_in(client, login, WRONG)
        assert refused.status_code == 200 and b"did not match" in refused.content
    locked = sign_in(client, login, WRONG)
    assert locked.status_code == 429 and b"Too many failed sign-ins" in locked.content

    # Locked: the right password is refused too, and nothing signs in.
    assert sign_in(client, login, PASSWORD).status_code == 429
    assert not signed_in(client)


def test_a_lockout_does_not_touch_another_user_name_or_address(
    client: Client, login: str, make_user: Callable[..., Persona]
) -> None:
    other = console_login_for(make_user("other-admin")).get_username()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, login, WRONG)
    assert sign_in(client, login, PASSWORD).status_code == 429

    assert sign_in(Client(), other, PASSWORD).status_code == 302  # same address, another user name
    assert sign_in(Client(), login, PASSWORD, address="10.0.0.2").status_code == 302  # another address


def test_a_success_before_the_limit_resets_the_count(client: Client, login: str) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        sign_in(client, login, WRONG)
    assert sign_in(client, login, PASSWORD).status_code == 302
    client.post("/signout/")
    assert not signed_in(client)
    # Counting starts again: limit - 1 more failures still leave the right password working.
    for _ in range(limit - 1):
        assert sign_in(client, login, WRONG).status_code == 200
    assert sign_in(client, login, PASSWORD).status_code == 302


def test_the_password_is_never_stored_with_an_attempt(client: Client, login: str) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        sign_in(client, login, WRONG)
    sign_in(Client(), login, PASSWORD, address="10.0.0.9")
    assert AccessAttempt.objects.filter(username=login).exists()
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        stored = str(list(model.objects.values()))
        assert WRONG not in stored and PASSWORD not in stored


# --- Session lifetimes --------------------------------------------------------------------------------------------


@pytest.fixture
def session_client(client: Client, login: str) -> Client:
    assert sign_in(client, login, PASSWORD).status_code == 302
    assert client.get("/").status_code == 200
    return client


def stamp(client: Client, **ages: int) -> None:
    """Backdate the session's stamps by `signed_in` / `last_seen` seconds."""
    session = client.session
    now = int(time.time())
    if "signed_in" in ages:
        session[SIGNED_IN_AT] = now - ages["signed_in"]
    if "last_seen" in ages:
        session[LAST_SEEN_AT] = now - ages["last_seen"]
    session.save()


def test_an_idle_session_ends(session_client: Client) -> None:
    stamp(session_client, last_seen=settings.KMS_SESSION_IDLE_SECONDS + 5)
    response = session_client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/signin/")
    assert not signed_in(session_client)
    # Signed out for good: fresh stamps in the old cookie would not bring the session back.
    assert session_client.get("/").status_code == 302


def test_activity_keeps_a_session_alive(session_client: Client) -> None:
    stamp(session_client, last_seen=settings.KMS_SESSION_IDLE_SECONDS - 60)
    assert session_client.get("/").status_code == 200
    assert int(time.time()) - session_client.session[LAST_SEEN_AT] <= 5  # the request refreshed the stamp


def test_a_session_ends_at_its_absolute_lifetime_even_when_active(session_client: Client) -> None:
    stamp(session_client, signed_in=settings.SESSION_COOKIE_AGE + 5, last_seen=1)
    assert session_client.get("/").status_code == 302
    assert not signed_in(session_client)


def test_a_session_without_stamps_ends(session_client: Client) -> None:
    session = session_client.session
    del session[SIGNED_IN_AT]
    session.save()
    assert session_client.get("/").status_code == 302


# --- Sudo mode ----------------------------------------------------------------------------------------------------

SUDO = "/console/confirm/"


@pytest.fixture
def no_sudo(console: Callable[..., Client], admin: Persona) -> Client:
    return console(admin, sudo=False)


def test_a_wrong_password_is_an_inline_error_and_opens_nothing(no_sudo: Client) -> None:
    response = no_sudo.post(SUDO, {"password": WRONG, "next": "/console/keys/"})
    assert response.status_code == 400
    assert b'role="alert"' in response.content and b"That password is not right" in response.content
    assert SUDO_AT not in no_sudo.session
    assert b'value="/console/keys/"' in response.content  # where to go once confirmed is kept


def test_the_right_password_returns_to_a_page_of_this_site(no_sudo: Client) -> None:
    response = no_sudo.post(SUDO, {"password": PASSWORD, "next": "/console/keys/?state=Enabled"})
    assert response.status_code == 302 and response["Location"] == "/console/keys/?state=Enabled"
    assert abs(no_sudo.session[SUDO_AT] - time.time()) <= 5


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/keys",
        "/\\evil.example",
        "javascript:alert(1)",
        "https:/evil",
        # This site's own host, with a path that names another: kept as the path, it was protocol-relative.
        "http://testserver//evil.example/keys",
        "http://testserver/\\evil.example",
    ],
)
def test_the_right_password_never_leaves_the_site(no_sudo: Client, target: str) -> None:
    response = no_sudo.post(f"{SUDO}?next=/console/keys/", {"password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_confirmation_page_offers_only_a_safe_way_back(no_sudo: Client) -> None:
    page = no_sudo.get(SUDO, {"next": "https://evil.example/"})
    assert page.status_code == 200
    assert b"evil.example" not in page.content and b'name="next" value="/"' in page.content


def test_a_wrong_sudo_password_counts_toward_the_sign_in_lockout(no_sudo: Client) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert no_sudo.post(SUDO, {"password": WRONG}).status_code == 400
    assert no_sudo.post(SUDO, {"password": WRONG}).status_code == 429
    assert no_sudo.post(SUDO, {"password": PASSWORD}).status_code == 429
    assert SUDO_AT not in no_sudo.session


def test_a_right_sudo_password_resets_the_failure_count_from_that_address_only(
    no_sudo: Client, admin: Persona
) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    elsewhere = "10.9.9.9"
    for _ in range(limit - 1):
        sign_in(Client(), admin.name, WRONG, address=elsewhere)
        assert no_sudo.post(SUDO, {"password": WRONG}).status_code == 400
    assert no_sudo.post(SUDO, {"password": PASSWORD}).status_code == 302
    # The count from this address starts again; a typo is not a lockout.
    for _ in range(limit - 1):
        assert no_sudo.post(SUDO, {"password": WRONG}).status_code == 400
    assert no_sudo.post(SUDO, {"password": PASSWORD}).status_code == 302
    # The failures from another address were not this success's to forgive.
    assert sign_in(Client(), admin.name, WRONG, address=elsewhere).status_code == 429


def test_the_confirmation_page_needs_a_sign_in(client: Client) -> None:
    response = client.get(SUDO)
    assert response.status_code == 302 and response["Location"].startswith("/signin/")


# A view behind @sudo_required (the real ones belong to the key and principal areas), on a URLconf of its own.
changes: list[str] = []


def _change(ctx: OperationContext) -> None:
    authorize(ctx, resource="*")  # as every service decides before it changes anything
    changes.append("done")


@console_view
@sudo_required()
def _destructive(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        refused = attempt(request, "iam:CreateGroup", _change)
        if not refused.ok:
            return HttpResponse(refused.error, status=403)
    return HttpResponse("ok")


class WithDestructiveAction:
    urlpatterns = [
        *(p for p in project_urls.urlpatterns if str(p.pattern) != "console/"),
        path("console/", include((console_urls.urlpatterns, "console"))),
        path("destroy/", _destructive),
    ]


@pytest.fixture
def destructive(settings: Any) -> Iterator[list[str]]:
    settings.ROOT_URLCONF = WithDestructiveAction
    changes.clear()
    yield changes
    changes.clear()


def test_a_fresh_confirmation_lets_the_action_through(
    console: Callable[..., Client], admin: Persona, destructive: list[str]
) -> None:
    assert console(admin).post("/destroy/").status_code == 200
    assert destructive == ["done"]


def test_without_confirmation_the_action_waits_for_the_password(
    no_sudo: Client, destructive: list[str]
) -> None:
    assert no_sudo.get("/destroy/").status_code == 200  # reading needs no password
    response = no_sudo.post("/destroy/", HTTP_REFERER="http://testserver/console/keys/?page=2")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/confirm/?next=%2Fconsole%2Fkeys%2F%3Fpage%3D2&action=")
    assert destructive == []


def test_an_external_referer_is_not_where_the_confirmation_returns(
    no_sudo: Client, destructive: list[str]
) -> None:
    response = no_sudo.post("/destroy/", HTTP_REFERER="https://evil.example/phish")
    assert response["Location"].startswith("/console/confirm/?next=%2Fdestroy%2F&action=")


def test_htmx_is_told_to_go_to_the_confirmation(no_sudo: Client, destructive: list[str]) -> None:
    response = no_sudo.post(
        "/destroy/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/console/keys/"
    )
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/console/confirm/?next=%2Fconsole%2Fkeys%2F&action=")
    assert destructive == []


def test_the_confirmation_expires(no_sudo: Client, destructive: list[str]) -> None:
    session = no_sudo.session
    session[SUDO_AT] = int(time.time()) - settings.KMS_SUDO_SECONDS + 30
    session.save()
    assert no_sudo.post("/destroy/").status_code == 200
    session[SUDO_AT] = int(time.time()) - settings.KMS_SUDO_SECONDS - 1
    session.save()
    assert no_sudo.post("/destroy/").status_code == 302
    assert destructive == ["done"]


def test_a_caller_the_engine_refuses_is_refused_before_any_password(
    console: Callable[..., Client], outsider: Persona, destructive: list[str]
) -> None:
    response = console(outsider, sudo=False).post("/destroy/")
    assert response.status_code == 403 and b"Refused" in response.content
    assert destructive == []
    [event] = AuditEvent.objects.filter(operation="iam:CreateGroup", caller_arn=outsider.arn)
    assert event.decision == "denied"


def test_the_confirmation_completes_the_action_that_asked_for_it(
    no_sudo: Client, destructive: list[str]
) -> None:
    asked = no_sudo.post("/destroy/")
    assert destructive == [] and "&action=" in asked["Location"]
    done = no_sudo.post(asked["Location"], {"password": PASSWORD})
    assert done.status_code == 200 and done.content == b"ok"
    assert destructive == ["done"]


def test_confirming_then_acting_works_end_to_end(no_sudo: Client, destructive: list[str]) -> None:
    assert no_sudo.post("/destroy/").status_code == 302
    assert no_sudo.post(SUDO, {"password": PASSWORD, "next": "/destroy/"})["Location"] == "/destroy/"
    assert no_sudo.post("/destroy/").status_code == 200
    assert destructive == ["done"]


# --- Headers and CSRF ---------------------------------------------------------------------------------------------


def csp_directives(response: HttpResponse) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.mark.parametrize("page", ["/", SUDO, "/signin/"])
def test_console_pages_send_the_security_headers(
    console: Callable[..., Client], admin: Persona, client: Client, page: str
) -> None:
    browser = client if page == "/signin/" else console(admin)
    response = browser.get(page)
    assert response.status_code == 200
    csp = csp_directives(response)
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert not {"'unsafe-inline'", "'unsafe-eval'"} & {word for words in csp.values() for word in words}
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_unlinked_login_and_a_lockout_send_them_too(
    client: Client, login: str, django_user_model: Any
) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked = sign_in(client, login, WRONG)
    assert locked.status_code == 429 and csp_directives(locked)["script-src"] == ["'self'"]
    unlinked = Client()
    unlinked.force_login(django_user_model.objects.create_user("nobody"))
    refused = unlinked.get("/")
    assert refused.status_code == 403 and refused["X-Frame-Options"] == "DENY"
    assert csp_directives(refused)["script-src"] == ["'self'"]


def test_a_post_without_a_csrf_token_is_refused(admin: Persona, login: str) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(console_login_for(admin))
    assert browser.post(SUDO, {"password": PASSWORD}).status_code == 403
    assert SUDO_AT not in browser.session
    # The same post with the page's token goes through: it was the token that was missing.
    page = browser.get(SUDO)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)
    assert token is not None
    confirmed = browser.post(SUDO, {"password": PASSWORD, "csrfmiddlewaretoken": token.group(1).decode()})
    assert confirmed.status_code == 302 and SUDO_AT in browser.session


def test_sign_in_without_a_csrf_token_is_refused(login: str) -> None:
    browser = Client(enforce_csrf_checks=True)
    assert sign_in(browser, login, PASSWORD).status_code == 403
    assert not signed_in(browser)


# --- Templates keep the CSP possible ------------------------------------------------------------------------------

# The API documentation pages style themselves inline and say so in their own CSP (kmsconsole/api/urls.py);
# they still run no inline script.
INLINE_STYLE_ALLOWED = {"api/redoc.html"}
_TEMPLATE_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.S)
_VARIABLE = re.compile(r"\{\{.*?\}\}", re.S)
_EVENT_HANDLER = re.compile(r"on[a-z]+")


class CspScanner(HTMLParser):
    """What a strict CSP would block in an HTML document: inline scripts, event handler attributes, javascript:
    URLs, and inline styles."""

    def __init__(self, *, styles: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.styles = styles
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value or "" for name, value in attrs}
        line = self.getpos()[0]
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.problems.append(f"line {line}: inline <script>")
        if tag == "style" and self.styles:
            self.problems.append(f"line {line}: <style> element")
        for name, value in names.items():
            if _EVENT_HANDLER.fullmatch(name):
                self.problems.append(f"line {line}: <{tag} {name}=…> event handler")
            if name == "style" and self.styles:
                self.problems.append(f"line {line}: style= attribute on <{tag}>")
            if name in ("href", "src", "action", "formaction") and value.strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"line {line}: javascript: URL in <{tag} {name}>")


def csp_problems(html: str, *, styles: bool = True) -> list[str]:
    # Template tags become spaces (so `{% if x %}onclick=…` is still seen as an attribute) and variables a word.
    scanner = CspScanner(styles=styles)
    scanner.feed(_VARIABLE.sub("x", _TEMPLATE_TAG.sub(" ", html)))
    scanner.close()
    return scanner.problems


def all_templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def test_the_scanner_sees_what_a_csp_blocks() -> None:
    bad = (
        '<script>alert(1)</script><button {% if x %}onclick="go()"{% endif %}>'
        '<a href="javascript:void(0)">x</a><p style="color:red"></p><body onload=x>'
    )
    problems = csp_problems(bad)
    assert len(problems) == 5, problems
    assert csp_problems('<script src="/static/js/a.js" defer></script><a data-onclick="x" on-x="1">') == []
    assert csp_problems("<style>p {}</style>", styles=False) == []
    assert csp_problems('<script type="application/json" id="d">{"a": 1}</script>') == []


@pytest.mark.parametrize("template", all_templates(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_needs_what_the_csp_forbids(template: Path) -> None:
    name = str(template.relative_to(TEMPLATES))
    problems = csp_problems(template.read_text(encoding="utf-8"), styles=name not in INLINE_STYLE_ALLOWED)
    assert not problems, f"{name}: {problems}"


def test_rendered_console_pages_need_nothing_the_csp_forbids(
    console: Callable[..., Client], admin: Persona, client: Client
) -> None:
    for browser, page in ((console(admin), "/"), (console(admin), SUDO), (client, "/signin/")):
        response = browser.get(page)
        assert not csp_problems(response.content.decode()), page
