"""The key policy tab: the people view and the JSON editor, live validation, review with a diff, save, the version
history and restore.

Every read and change runs through `attempt()` with the operation the REST API uses for it: GetKeyPolicy (the
tab), kmsconsole:ValidateKeyPolicy (the live check and the review step: a dry run of PutKeyPolicy, so it needs
kms:PutKeyPolicy on the key), PutKeyPolicy (save and restore, in sudo mode), kmsconsole:ListKeyPolicyVersions (the
history, and the review of a restore). The tab and the restore's review ask the engine (recorded nowhere) whether
the caller's PutKeyPolicy would be allowed (`keys.services.key_policy.may_put_key_policy`): a reader's editor
checks nothing as it types, so its keystrokes leave no refused checks in the audit trail, and a reader's review of
a restore shows the version as saved, without what a restore would change or why (who was deleted or recreated).
A draft on its way to being saved is kept in the session, so the password confirmation of sudo mode, which comes
back with a GET, does not lose it.
"""

from __future__ import annotations

import difflib
import json
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from keys.models import Key, KeyPolicyVersion
from keys.services import key_policy, lifecycle, policy_restore
from keys.services.policy_restore import RestoredPolicy, RestorePreview
from kmsconsole.api import reads
from kmsconsole.console import policy_check
from kmsconsole.console.access_diff import access_diff_context
from kmsconsole.console.dispatch import Outcome, attempt, console_caller, console_view
from kmsconsole.console.keytabs import key_tab_context
from kmsconsole.console.sudo import sudo_fresh, sudo_required
from kmsconsole.console.views.key_tabs import failure_status, key_params
from kmsconsole.operations import OperationContext
from policies import arns
from policies.authorization import would_allow
from policies.selectors import account_get
from policies.services.lookups import entity_list

DRAFTS = "kms_policy_drafts"
DRAFTS_KEPT = 5  # drafts of different keys kept in one session
VERSIONS_PER_PAGE = 20
MAX_PAGE = 100_000  # a page number past any history (and within what the database takes as an offset)
ROLES = {"administrator": "key administrator", "user": "key user"}
# The people view's two lists: (role, title, what the role may do, what it means when no one has it).
PEOPLE_SECTIONS = (
    (
        "administrator",
        "Key administrators",
        "They manage the key (describe, enable and disable, tag, rotate, change its policy, revoke grants) but do "
        "not use it in cryptographic operations.",
        "No key administrators are named: only the account root's statement (through IAM policies), if the "
        "policy has it, lets anyone manage the key.",
    ),
    (
        "user",
        "Key users",
        "They use the key in cryptographic operations, and may create grants for AWS resources that use it.",
        "No key users are named: only the account root's statement (through IAM policies), if the policy has "
        "it, lets anyone use the key.",
    ),
)


def comparable(document: str) -> str:
    """A policy laid out one way (two-space indent, members in their own order), so a diff shows what changed
    and not how each side happened to be indented or wrapped. Text that is not JSON is compared as it is."""
    try:
        return json.dumps(json.loads(document), indent=2, ensure_ascii=False)
    except ValueError:
        return document.replace("\r\n", "\n")


def diff_lines(before: str, after: str, *, before_label: str, after_label: str) -> list[tuple[str, str]]:
    """A unified diff of two documents, laid out alike first, as (kind, text) rows: file, hunk, add, del or
    same."""
    rows: list[tuple[str, str]] = []
    for line in difflib.unified_diff(
        comparable(before).splitlines(),
        comparable(after).splitlines(),
        before_label,
        after_label,
        lineterm="",
    ):
        if line.startswith(("---", "+++")) and len(rows) < 2:
            rows.append(("file", line))
        elif line.startswith("@@"):
            rows.append(("hunk", line))
        elif line.startswith("+"):
            rows.append(("add", line))
        elif line.startswith("-"):
            rows.append(("del", line))
        else:
            rows.append(("same", line))
    return rows


# The request attribute that carries, from inside the page's operation to its rendering, whether the page's header
# may show what DescribeKey answers (the key's description, state and alias): `_decide_header`.
KEY_DESCRIBED = "kms_key_described"


def _decide_header(request: HttpRequest, ctx: OperationContext, key: Key) -> None:
    """Inside the page's own operation (GetKeyPolicy, kmsconsole:ValidateKeyPolicy, ...): whether a DescribeKey
    request by the caller would be allowed, so that the header shows the key's description, state and alias only
    then (keys.services.lifecycle.key_describable; recorded on the page's own event only)."""
    setattr(request, KEY_DESCRIBED, lifecycle.key_describable(ctx, key))


def _page(
    request: HttpRequest, template: str, key_id: str, context: dict[str, Any], status: int
) -> HttpResponse:
    page = {**key_tab_context(key_id, "policy"), "key_described": getattr(request, KEY_DESCRIBED, False)}
    return render(request, template, {**page, **context}, status=status)


def _refused(request: HttpRequest, key_id: str, outcome: Outcome[Any]) -> HttpResponse:
    """The tab with the reason it cannot be shown (refused, unknown key), and nothing of the policy."""
    return _page(
        request,
        "console/key_policy.html",
        key_id,
        {"key": None, "error": outcome.error},
        failure_status(outcome.code),
    )


def _drafts(request: HttpRequest) -> dict[str, Any]:
    return dict(request.session.get(DRAFTS, {}))


def _keep_draft(request: HttpRequest, key_id: str, draft: str, source: str) -> None:
    drafts = _drafts(request)
    drafts.pop(key_id, None)
    drafts[key_id] = {"policy": draft, "source": source}
    while len(drafts) > DRAFTS_KEPT:  # the oldest go first
        drafts.pop(next(iter(drafts)))
    request.session[DRAFTS] = drafts


def _drop_draft(request: HttpRequest, key_id: str) -> None:
    drafts = _drafts(request)
    if drafts.pop(key_id, None) is not None:
        request.session[DRAFTS] = drafts


def _principal_choices(request: HttpRequest) -> list[tuple[str, list[str]]]:
    """The account's users and roles to pick from, for a caller allowed to list them (asked first, so a caller
    without IAM read access does not leave a refusal in the audit trail on every visit)."""
    caller = console_caller(request)
    if caller is None:
        return []
    groups: list[tuple[str, list[str]]] = []
    for kind, operation, label in (("user", "iam:ListUsers", "Users"), ("role", "iam:ListRoles", "Roles")):
        arn_of = arns.user_arn if kind == "user" else arns.role_arn
        if not would_allow(caller, operation, arn_of(caller.account_id, "/", "*")):
            continue
        outcome = attempt(
            request,
            operation,
            lambda ctx, k=kind: [
                entity.arn
                for entity in entity_list(ctx=ctx, account=account_get(ctx.caller.account_id), kind=k)
            ],
        )
        if outcome.ok and outcome.value:
            groups.append((label, outcome.value))
    return groups


def _editor_page(
    request: HttpRequest,
    key: Key,
    *,
    draft: str,
    view: str,
    findings: list[dict[str, Any]],
    problems: list[dict[str, Any]] | None = None,
    error: str = "",
    people_form: dict[str, str] | None = None,
    status: int = 200,
    may_check: bool,
) -> HttpResponse:
    """The tab: the people view or the JSON editor (with `draft`), findings beside it. Only when `may_check` (the
    caller may PutKeyPolicy on the key without the lockout check's bypass, as the review step's
    ValidateKeyPolicy asks) does the editor check the draft as it is typed and offer a change; otherwise the tab
    is read-only (a caller allowed only with the bypass would be refused at the review, so is not sent there)."""
    people = policy_check.policy_people(key.policy)
    if view not in ("people", "json"):
        view = "people" if people is not None else "json"
    form = people_form or {}
    sections = [
        {
            "role": role,
            "title": title,
            "singular": ROLES[role],
            "hint": hint,
            "empty": empty,
            "principals": people.of(role) if people is not None else (),
            "form": form if form.get("role") == role else {},
        }
        for role, title, hint, empty in PEOPLE_SECTIONS
    ]
    context = {
        "key": key,
        "view": view,
        "people": people,
        "people_sections": sections,
        "draft": draft,
        "findings": findings,
        "problems": problems or [],
        "error": error,
        # Only for the add forms, which a caller who may not change the policy is not offered.
        "choices": _principal_choices(request)
        if may_check and view == "people" and people is not None
        else [],
        "may_check": may_check,
    }
    return _page(request, "console/key_policy.html", str(key.key_id), context, status)


def read_policy(request: HttpRequest, key_id: str) -> Outcome[tuple[Key, str]]:
    """GetKeyPolicy: the key and its policy."""

    def work(ctx: OperationContext) -> tuple[Key, str]:
        key, document = key_policy.key_policy_get(ctx=ctx, key_id=key_id)
        _decide_header(request, ctx, key)
        return key, document

    return attempt(
        request, "GetKeyPolicy", work, params=key_params(key_id, PolicyName=key_policy.DEFAULT_POLICY_NAME)
    )


def _read_policy_to_edit(request: HttpRequest, key_id: str) -> Outcome[tuple[Key, str, bool]]:
    """GetKeyPolicy: the key, its policy, and whether the caller may check drafts of it and change it
    (PutKeyPolicy without the bypass)."""

    def work(ctx: OperationContext) -> tuple[Key, str, bool]:
        key, document = key_policy.key_policy_get(ctx=ctx, key_id=key_id)
        _decide_header(request, ctx, key)
        return key, document, key_policy.may_put_key_policy(ctx, key)

    return attempt(
        request, "GetKeyPolicy", work, params=key_params(key_id, PolicyName=key_policy.DEFAULT_POLICY_NAME)
    )


@console_view
def key_policy_tab(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GET: the key policy tab (?view=people|json). ?format=json answers {"policy": ...} for the editor's
    "compare with the current policy"."""
    key_id_text = str(key_id)
    if request.GET.get("format") == "json":
        outcome = read_policy(request, key_id_text)
        if not outcome.ok:
            return JsonResponse({"error": outcome.error}, status=failure_status(outcome.code))
        return JsonResponse({"policy": outcome.value[1]})
    to_edit = _read_policy_to_edit(request, key_id_text)
    if not to_edit.ok:
        return _refused(request, key_id_text, to_edit)
    key, document, may_check = to_edit.value
    findings = policy_check.key_findings(key, document)
    return _editor_page(
        request,
        key,
        draft=document,
        view=request.GET.get("view", ""),
        findings=findings,
        may_check=may_check,
    )


def _checked(
    ctx: OperationContext, key_id: str, draft: str, request: HttpRequest | None = None
) -> tuple[Key, dict[str, Any]]:
    """The draft's check; with the `request` of a page that shows the key's header, its header decided too."""
    key = key_policy.key_for_policy_check(ctx, key_id)
    if request is not None:
        _decide_header(request, ctx, key)
    return key, policy_check.key_policy_check(ctx, key=key, document=draft)


@console_view
@require_POST
def key_policy_validate(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """POST policy=<draft>: the live check as JSON (errors with line and column, lockout, findings)."""
    key_id_text = str(key_id)
    draft = policy_check.posted_policy(request)
    outcome = attempt(
        request,
        "kmsconsole:ValidateKeyPolicy",
        lambda ctx: _checked(ctx, key_id_text, draft)[1],
        params=key_params(key_id_text, Policy=draft),
    )
    if not outcome.ok:
        return JsonResponse({"error": outcome.error}, status=failure_status(outcome.code))
    return JsonResponse(outcome.value)


def _review_page(
    request: HttpRequest,
    key: Key,
    check: dict[str, Any],
    *,
    draft: str,
    action: str,
    restore: KeyPolicyVersion | None = None,
    restore_notes: tuple[str, ...] = (),
    may_restore: bool = True,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "key": key,
        "draft": draft,
        "current": key.policy,
        "current_compared": comparable(key.policy),
        "draft_compared": comparable(draft),
        "unchanged": draft == key.policy,
        "diff": diff_lines(key.policy, draft, before_label="current policy", after_label="draft"),
        "lockout": check["lockout"],
        "findings": check["findings"],
        # Who gains or loses access (kmsconsole:AnalyzeKeyAccess), before anything is saved.
        "access_diff": access_diff_context(request, key, draft) if draft != key.policy else None,
        "action": action,
        "restore": restore,
        "restore_notes": restore_notes,
        "may_restore": may_restore,
        "error": error,
        "sudo_fresh": sudo_fresh(request),
    }
    return _page(request, "console/key_policy_review.html", str(key.key_id), context, status)


def _review(
    request: HttpRequest, key_id: str, draft: str, *, source: str, error: str = "", status: int = 200
) -> HttpResponse:
    """Check the draft (kmsconsole:ValidateKeyPolicy); an invalid one goes back to the editor with its errors,
    a valid one to the review page with the diff, the lockout warning and the findings."""
    outcome = attempt(
        request,
        "kmsconsole:ValidateKeyPolicy",
        lambda ctx: _checked(ctx, key_id, draft, request),
        params=key_params(key_id, Policy=draft),
    )
    if not outcome.ok:
        return _refused(request, key_id, outcome)
    key, check = outcome.value
    _keep_draft(request, key_id, draft, source)
    if not check["valid"]:
        first = error or "The policy cannot be saved as it is: fix the problems marked below."
        return _editor_page(
            request,
            key,
            draft=draft,
            view="json" if source == "json" else "people",
            findings=check["findings"],
            problems=check["errors"],
            error=first,
            status=status if error else 400,
            may_check=True,  # the check was allowed: a PutKeyPolicy dry run
        )
    action = reverse("console:key-policy-save", args=[key_id])
    return _review_page(request, key, check, draft=draft, action=action, error=error, status=status)


def _people_draft(request: HttpRequest, key_id: str) -> HttpResponse:
    """A people-view change (add or remove a key administrator or key user) becomes a draft for review."""
    outcome = _read_policy_to_edit(request, key_id)
    if not outcome.ok:
        return _refused(request, key_id, outcome)
    key, document, may_check = outcome.value
    form = {name: request.POST.get(name, "").strip() for name in ("role", "change", "principal", "arn")}
    typed = form["arn"] or form["principal"]
    try:
        if form["role"] not in ROLES or form["change"] not in ("add", "remove"):
            raise policy_check.PeopleChangeError(
                "Choose whether to add or remove a key administrator or user."
            )
        principal = policy_check.principal_for_policy(typed)
        draft = policy_check.people_changed(
            document, key=key, role=form["role"], principal=principal, add=form["change"] == "add"
        )
    except policy_check.PeopleChangeError as exc:
        return _editor_page(
            request,
            key,
            draft=document,
            view="people",
            findings=policy_check.key_findings(key, document),
            # Beside the list it is about; at the top when the form named no list.
            error="" if form["role"] in ROLES else str(exc),
            people_form={**form, "error": str(exc)},
            status=400,
            may_check=may_check,
        )
    return _review(request, key_id, draft, source="people")


@console_view
def key_policy_review(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """POST a draft (policy=..., from the JSON view) or a people change (role, change, principal/arn): the review
    step. GET shows the review of the draft kept in the session (after the sudo confirmation)."""
    key_id_text = str(key_id)
    if request.method == "POST":
        if "role" in request.POST:
            return _people_draft(request, key_id_text)
        return _review(request, key_id_text, policy_check.posted_policy(request), source="json")
    kept = _drafts(request).get(key_id_text)
    if kept is None:
        messages.info(request, "There is no draft to review: edit the policy first.")
        return HttpResponseRedirect(reverse("console:key-policy", args=[key_id_text]))
    return _review(request, key_id_text, kept["policy"], source=kept.get("source", "json"))


def _bypass(request: HttpRequest) -> bool:
    return request.POST.get("bypass_lockout_safety_check") == "on"


def _saved(request: HttpRequest, key_id: str, key: Key, what: str) -> HttpResponseRedirect:
    _drop_draft(request, key_id)
    version = key.policy_versions.order_by("-version").values_list("version", flat=True).first()
    messages.success(request, f"{what} Version {version} is now the key policy.")
    return HttpResponseRedirect(reverse("console:key-policy", args=[key_id]))


@console_view
@sudo_required(keep=("policy", "bypass_lockout_safety_check"))
@require_POST
def key_policy_save(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """Save the reviewed draft (PutKeyPolicy). A refusal shows the engine's message with the draft kept."""
    key_id_text = str(key_id)
    draft = policy_check.posted_policy(request)
    bypass = _bypass(request)
    outcome = attempt(
        request,
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(
            ctx=ctx, key_id=key_id_text, policy=draft, bypass_lockout=bypass
        ),
        params=key_params(
            key_id_text,
            PolicyName=key_policy.DEFAULT_POLICY_NAME,
            Policy=draft,
            BypassPolicyLockoutSafetyCheck=bypass,
        ),
    )
    if outcome.ok:
        return _saved(request, key_id_text, outcome.value, "The key policy was saved.")
    source = _drafts(request).get(key_id_text, {}).get("source", "json")
    return _review(
        request, key_id_text, draft, source=source, error=outcome.error, status=failure_status(outcome.code)
    )


def _version_review(
    request: HttpRequest, ctx: OperationContext, key_id: str, version: int
) -> tuple[RestorePreview, Key, dict[str, Any]]:
    """The review of a restore: for a caller who may restore it, what it would write (the version, with the ARNs of
    principals deleted since named by their unique ids: `keys.services.policy_restore`) and that document's
    check; for a reader, the version as saved and its findings (no principal looked up, no check as the caller)."""
    preview = policy_restore.restore_preview(ctx, key_id=key_id, version=version)
    key = Key.objects.select_related("account").get(pk=preview.version.key_id)
    _decide_header(request, ctx, key)
    if preview.plan is None:
        return preview, key, policy_check.findings_only(key, preview.version.document)
    check = policy_check.key_policy_check(ctx, key=key, document=preview.plan.document, stored=True)
    return preview, key, check


def _restore_review(
    request: HttpRequest, key_id: str, version: int, *, error: str = "", status: int = 200
) -> HttpResponse:
    outcome = attempt(
        request,
        "kmsconsole:ListKeyPolicyVersions",
        lambda ctx: _version_review(request, ctx, key_id, version),
        params=key_params(key_id, Version=version),
    )
    if not outcome.ok:
        return _refused(request, key_id, outcome)
    preview, key, check = outcome.value
    action = reverse("console:key-policy-restore", args=[key_id, version])
    plan = preview.plan
    return _review_page(
        request,
        key,
        check,
        draft=plan.document if plan is not None else preview.version.document,
        action=action,
        restore=preview.version,
        restore_notes=plan.notes if plan is not None else (),
        may_restore=plan is not None,
        error=error,
        status=status,
    )


def _restore(ctx: OperationContext, key_id: str, version: int, bypass: bool) -> RestoredPolicy:
    # As the REST API does: the version is read once the caller may PutKeyPolicy on the key, and the put is
    # then decided again, with the document it writes, as any PutKeyPolicy.
    return policy_restore.key_policy_restore(ctx=ctx, key_id=key_id, version=version, bypass_lockout=bypass)


@console_view
@sudo_required(keep=("bypass_lockout_safety_check",))
def key_policy_restore(request: HttpRequest, key_id: UUID, version: int) -> HttpResponse:
    """GET: the review of restoring `version` (diff against the current policy, lockout warning). POST: make it
    the key policy again, as a new version (PutKeyPolicy)."""
    key_id_text = str(key_id)
    if request.method != "POST":
        return _restore_review(request, key_id_text, version)
    bypass = _bypass(request)
    outcome = attempt(
        request,
        "PutKeyPolicy",
        lambda ctx: _restore(ctx, key_id_text, version, bypass),
        params=key_params(
            key_id_text,
            PolicyName=key_policy.DEFAULT_POLICY_NAME,
            Version=version,
            BypassPolicyLockoutSafetyCheck=bypass,
        ),
    )
    if outcome.ok:
        for note in outcome.value.plan.notes:
            messages.warning(request, note)
        return _saved(request, key_id_text, outcome.value.key, f"Version {version} was restored.")
    return _restore_review(
        request, key_id_text, version, error=outcome.error, status=failure_status(outcome.code)
    )


def _page_number(request: HttpRequest) -> int:
    try:
        return min(max(1, int(request.GET.get("page", "1"))), MAX_PAGE)
    except ValueError:
        return 1


@console_view
def key_policy_versions(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """The policy's versions, newest first, each with its author, time, bypass flag and diff to the one before."""
    key_id_text = str(key_id)
    page = _page_number(request)
    start = (page - 1) * VERSIONS_PER_PAGE

    def work(ctx: OperationContext) -> list[KeyPolicyVersion]:
        rows = reads.policy_versions(ctx, key_id=key_id_text).select_related("key__account")
        # One more than a page, to diff the page's oldest version against the one before it.
        found = list(rows[start : start + VERSIONS_PER_PAGE + 1])
        if found:
            _decide_header(request, ctx, found[0].key)
        return found

    outcome = attempt(request, "kmsconsole:ListKeyPolicyVersions", work, params=key_params(key_id_text))
    if not outcome.ok:
        return _refused(request, key_id_text, outcome)
    rows = outcome.value
    shown = rows[:VERSIONS_PER_PAGE]
    latest = (
        rows[0].key.policy_versions.order_by("-version").values_list("version", flat=True).first()
        if rows
        else None
    )
    versions = [
        {
            "version": row,
            "current": row.version == latest,
            "previous": rows[index + 1].version if index + 1 < len(rows) else None,
            "diff": diff_lines(
                rows[index + 1].document,
                row.document,
                before_label=f"version {rows[index + 1].version}",
                after_label=f"version {row.version}",
            )
            if index + 1 < len(rows)
            else None,
        }
        for index, row in enumerate(shown)
    ]
    context = {
        "key": rows[0].key if rows else None,
        "versions": versions,
        "page": page,
        "has_next": len(rows) > VERSIONS_PER_PAGE,
    }
    return _page(request, "console/key_policy_versions.html", key_id_text, context, 200)
