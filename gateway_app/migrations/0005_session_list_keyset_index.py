from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("gateway_app", "0004_use_gateway_permission"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="gatewaysession",
            index=models.Index(
                fields=["user", "-last_activity", "-id"], name="gateway_session_list_page"
            ),
        ),
    ]
