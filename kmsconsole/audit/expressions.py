"""The SQL expressions of GetKeyLastUsage's indexes and of the key policy history's (kmsconsole.audit.models), and
of the queries that must repeat them exactly to use them (kmsconsole.audit.last_usage, .policy_history).

Migration 0012 names these classes by their path: keep them here, small and importing nothing of the app's.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, Func

# The chained response element of an allowed ReEncrypt that names its source key (the event is filed under the
# destination), and the one operation whose events have it.
SOURCE_KEY_ELEMENT = "SourceKeyId"
RE_ENCRYPT = "ReEncrypt"
# The operations whose allowed events set a key's policy (kmsconsole.audit.policy_history): PutKeyPolicy, CreateKey
# (the policy given or the default one applied) and the service's rewrite of a policy that named a deleted
# principal (policies.deletion).
UNBIND_OPERATION = "UnbindDeletedPrincipal"
KEY_POLICY_OPERATIONS = ("PutKeyPolicy", "CreateKey", UNBIND_OPERATION)


class Negated(Func):
    """`-expression`, written without a parameter so that a query's ORDER BY is the same expression as an index's
    (GetKeyLastUsage's indexes on PostgreSQL: newest first as an ascending order that only they give)."""

    template = "(-%(expressions)s)"
    output_field = models.BigIntegerField()


class ReEncryptSource(Func):
    """An event's `response_elements.SourceKeyId` as text (an allowed ReEncrypt's source key ARN; NULL where there
    is none): a plain expression compared with a plain `=`, the same SQL in the index and in the query. (A JSON key
    lookup is not: on SQLite Django compares it with `JSON_EXTRACT(<the ARN>, '$')`, which fails on an ARN, and on
    PostgreSQL it is `->` and a jsonb comparison the text index cannot serve.)"""

    template = f"(%(expressions)s ->> '{SOURCE_KEY_ELEMENT}')"
    output_field = models.TextField()

    def __init__(self, **extra: Any) -> None:
        super().__init__(F("response_elements"), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template=f"json_extract(%(expressions)s, '$.{SOURCE_KEY_ELEMENT}')",
            **extra_context,
        )


class NotIndexed(Func):
    """A column as SQLite's query planner may not use for an index (its unary `+`, SQLite's documented way to
    disqualify a WHERE term from index use): the planner then picks an index on the other terms. The same value
    elsewhere."""

    template = "+%(expressions)s"
    output_field = models.CharField()

    def __init__(self, column: str, **extra: Any) -> None:
        super().__init__(F(column), **extra)
