from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("settings_app", "0005_token_cache_and_choices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="connectiontestrun",
            index=models.Index(fields=["user", "created_at"], name="testrun_user_created"),
        ),
    ]
