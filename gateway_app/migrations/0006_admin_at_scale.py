from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def backfill_message_counts(apps, schema_editor) -> None:
    """Each existing session's transcript rows, counted once here so the admin never has to."""
    session_model = apps.get_model("gateway_app", "GatewaySession")
    message_model = apps.get_model("gateway_app", "Message")
    counts = (
        message_model.objects.filter(session=OuterRef("pk"))
        .order_by()
        .values("session")
        .annotate(n=Count("pk"))
        .values("n")
    )
    session_model.objects.update(message_count=Coalesce(Subquery(counts), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("gateway_app", "0005_session_list_keyset_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="gatewaysession",
            name="message_count",
            field=models.PositiveIntegerField(
                default=0, editable=False, help_text="transcript rows stored", verbose_name="messages"
            ),
        ),
        migrations.AddIndex(
            model_name="gatewaysession",
            index=models.Index(fields=["-last_activity", "-id"], name="gateway_session_activity"),
        ),
        migrations.AddIndex(
            model_name="gatewaysession",
            index=models.Index(
                fields=["status", "-last_activity", "-id"], name="gateway_session_status_page"
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["session", "id"], name="gateway_message_session_page"),
        ),
        migrations.RunPython(backfill_message_counts, migrations.RunPython.noop, elidable=True),
    ]
