"""What the REST API keeps under a root key (`kmsconsole.core.rootkey_dependents`): the row MACs of API tokens.
Registered when the app is ready (`kmsconsole.api.apps`)."""

from __future__ import annotations

from kmsconsole.api.models import ApiToken
from kmsconsole.core.rootkey_dependents import register
from kmsconsole.core.rootkey_movers import mac_rows

register(mac_rows(name="row MACs: API tokens", model=ApiToken, related=("principal",)))
