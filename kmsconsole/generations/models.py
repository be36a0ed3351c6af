"""One row per invalidation scope (an account's principals, a key, an account's aliases).

Every write to what the KMS request path caches sets its scope's `value` to a fresh random number, in the
writer's own transaction (`kmsconsole.generations.scopes`). A process that cached something under the value it
read compares it with the value now stored before using it, so a change is seen by every web server process as soon
as its transaction commits. Values are random rather than counted up, so that a rolled-back write, a restored
backup or a truncated table can never make an old entry look current again.
"""

from __future__ import annotations

from django.db import models


class Generation(models.Model):
    """The current generation of one scope (`iam:<account id>`, `key:<key id>`, `alias:<account id>`). A scope
    without a row is at generation 0."""

    scope = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.scope}@{self.value}"
