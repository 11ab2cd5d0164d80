"""Data migrations: what they compute for rows that exist before them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("gateway_app", "0005_session_list_keyset_index")]
AFTER = [("gateway_app", "0006_admin_at_scale")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_0006_backfills_each_sessions_message_count(alice):
    """Tests that migration 0006 stores each existing session's transcript row count, zero
    for a session without messages."""
    apps = migrate(BEFORE)
    session_model = apps.get_model("gateway_app", "GatewaySession")
    message_model = apps.get_model("gateway_app", "Message")
    talky = session_model.objects.create(id="a" * 32, user_id=alice.pk)
    session_model.objects.create(id="b" * 32, user_id=alice.pk)
    message_model.objects.bulk_create(
        message_model(session=talky, role="user", content=str(i)) for i in range(3)
    )
    apps = migrate(AFTER)
    counts = dict(
        apps.get_model("gateway_app", "GatewaySession").objects.values_list("id", "message_count")
    )
    assert counts == {"a" * 32: 3, "b" * 32: 0}
