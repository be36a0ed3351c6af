"""The policy simulator's form: what a person may type, checked for shape. Principals, actions, keys, tokens and
drafts are checked by the service (policies/analyzer/services.py), which answers in words."""

from __future__ import annotations

from typing import Any

from django import forms

from policies.analyzer.access import all_key_actions
from policies.analyzer.services import MAX_GRANT_TOKENS

TRANSPORT_CHOICES = (("", "Not set"), ("true", "HTTPS (true)"), ("false", "Plain HTTP (false)"))
_DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
_CONTEXT_PAIRS_MAX = 64


def _text(label: str, help_text: str = "", *, required: bool = False, rows: int = 0) -> forms.CharField:
    widget: forms.Widget = (
        forms.Textarea(attrs={"rows": rows, "spellcheck": "false"}) if rows else forms.TextInput()
    )
    return forms.CharField(label=label, help_text=help_text, required=required, strip=not rows, widget=widget)


class SimulationForm(forms.Form):
    principal = _text(
        "Principal",
        "ARN of a user, role, role session or account root, e.g. arn:aws:iam::111122223333:user/alice.",
        required=True,
    )
    action = forms.ChoiceField(label="Action", choices=[(action, action) for action in all_key_actions()])
    key = _text("Key", "Key id, key ARN, alias name or alias ARN.", required=True)
    encryption_context = _text("Encryption context", "One key=value per line.", rows=3)
    grant_tokens = _text("Grant tokens", f"One per line, at most {MAX_GRANT_TOKENS}.", rows=2)
    source_ip = forms.GenericIPAddressField(label="Source IP", required=False, help_text="e.g. 10.0.0.12")
    time = forms.DateTimeField(
        label="Time",
        required=False,
        input_formats=_DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="UTC. Empty: now.",
    )
    secure_transport = forms.ChoiceField(
        label="Transport (aws:SecureTransport)", choices=TRANSPORT_CHOICES, required=False
    )
    draft_key_policy = _text(
        "Draft key policy (optional)",
        "Used instead of the key's policy; the access diff is shown too.",
        rows=8,
    )
    draft_identity_name = _text(
        "Draft identity policy name (optional)",
        "Replaces the principal's identity policy of this name (its own or a group's), or is added as it.",
    )
    draft_identity_document = _text("Draft identity policy (optional)", rows=6)

    def clean_encryption_context(self) -> dict[str, str] | None:
        pairs: dict[str, str] = {}
        lines = [
            line.strip() for line in self.cleaned_data["encryption_context"].splitlines() if line.strip()
        ]
        if len(lines) > _CONTEXT_PAIRS_MAX:
            raise forms.ValidationError(f"At most {_CONTEXT_PAIRS_MAX} pairs.")
        for line in lines:
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Write each pair as key=value: {line[:64]!r} is not.")
            pairs[name.strip()] = value.strip()
        return pairs or None

    def clean_grant_tokens(self) -> list[str]:
        tokens = [line.strip() for line in self.cleaned_data["grant_tokens"].splitlines() if line.strip()]
        if len(tokens) > MAX_GRANT_TOKENS:
            raise forms.ValidationError(f"At most {MAX_GRANT_TOKENS} grant tokens.")
        return tokens

    def clean_secure_transport(self) -> bool | None:
        return {"true": True, "false": False}.get(self.cleaned_data["secure_transport"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        name = (data.get("draft_identity_name") or "").strip()
        document = (data.get("draft_identity_document") or "").replace("\r\n", "\n")
        if document.strip() and not name:
            self.add_error("draft_identity_name", "Name the identity policy the draft replaces or adds.")
        if name and not document.strip():
            self.add_error("draft_identity_document", "Write the draft identity policy, or clear its name.")
        data["draft_identity"] = (name, document) if name and document.strip() else None
        draft = (data.get("draft_key_policy") or "").replace("\r\n", "\n")
        data["draft_key_policy"] = draft if draft.strip() else None
        return data

    def service_arguments(self) -> dict[str, Any]:
        """The cleaned values as policies.analyzer.services.policy_simulate takes them (without ctx)."""
        data = self.cleaned_data
        return {
            "principal": data["principal"],
            "action": data["action"],
            "key_id": data["key"],
            "encryption_context": data["encryption_context"],
            "grant_tokens": data["grant_tokens"],
            "source_ip": data["source_ip"] or None,
            "time": data["time"],
            "secure_transport": data["secure_transport"],
            "draft_key_policy": data["draft_key_policy"],
            "draft_identity_policy": data["draft_identity"],
        }

    def audit_parameters(self) -> dict[str, Any]:
        """What the audit event records (grant tokens never: they are secret request fields)."""
        arguments = self.service_arguments()
        time = arguments["time"]
        draft = arguments.pop("draft_identity_policy")
        return {
            "Principal": arguments["principal"],
            "Action": arguments["action"],
            "KeyId": arguments["key_id"],
            "EncryptionContext": arguments["encryption_context"],
            "GrantTokens": arguments["grant_tokens"],
            "SourceIp": arguments["source_ip"],
            "Time": time.isoformat() if time else None,
            "SecureTransport": arguments["secure_transport"],
            "DraftKeyPolicy": arguments["draft_key_policy"],
            "DraftIdentityPolicy": {"Name": draft[0], "Document": draft[1]} if draft else None,
        }
