"""One index on the audit events' request id where `db_index=True` made two on PostgreSQL.

The trail filters by a request id prefix (`request_id__startswith`), which only the `varchar_pattern_ops` index
serves; it serves equality too, so the plain btree beside it cost an index insert per event and was never read.
On PostgreSQL the pattern index is kept and renamed (no rebuild of an index over a large trail, no long lock);
elsewhere (SQLite, where operator classes do not exist) the one index is made again under its new name.
"""

from django.db import migrations, models

_TABLE = "audit_auditevent"
_PLAIN = "audit_auditevent_request_id_b6fdcfa6"
_PATTERN = "audit_auditevent_request_id_b6fdcfa6_like"
_NEW = "audit_request_id_idx"


def _forwards(apps, schema_editor):
    quote = schema_editor.quote_name
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_PLAIN)}")
        schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(_PATTERN)} RENAME TO {quote(_NEW)}")
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(_NEW)} ON {quote(_TABLE)} (request_id varchar_pattern_ops)"
        )
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_PLAIN)}")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_NEW)} ON {quote(_TABLE)} (request_id)")


def _backwards(apps, schema_editor):
    quote = schema_editor.quote_name
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_NEW)}")
    schema_editor.execute(f"CREATE INDEX {quote(_PLAIN)} ON {quote(_TABLE)} (request_id)")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {quote(_PATTERN)} ON {quote(_TABLE)} (request_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0010_chain_base_key_id"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="request_id",
                    field=models.CharField(max_length=64),
                ),
                migrations.AddIndex(
                    model_name="auditevent",
                    index=models.Index(
                        fields=["request_id"], name="audit_request_id_idx", opclasses=["varchar_pattern_ops"]
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(_forwards, _backwards)],
        ),
    ]
