"""What the grants app keeps under a root key (`kmsconsole.core.rootkey_dependents`): the row MACs of grants and
of integrated services. Registered when the app is ready (`grants.apps`)."""

from __future__ import annotations

from grants.models import Grant, IntegratedService
from kmsconsole.core.rootkey_dependents import register
from kmsconsole.core.rootkey_movers import mac_rows

register(mac_rows(name="row MACs: grants", model=Grant, related=("key",), parent="key"))
register(mac_rows(name="row MACs: integrated services", model=IntegratedService))
