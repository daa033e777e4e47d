"""Migration 0009: settings saved before the credential choice keep using their client secret."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("settings_app", "0009_outcome_choices")]
AFTER = [("settings_app", "0010_credentials")]


@pytest.mark.django_db(transaction=True)
def test_existing_settings_migrate_to_the_client_secret():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    old_apps.get_model("settings_app", "OutgoingEmailSettings").objects.create(pk=1, username="svc@contoso.com")
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new_apps = executor.loader.project_state(AFTER).apps
    saved = new_apps.get_model("settings_app", "OutgoingEmailSettings").objects.get(pk=1)
    assert (saved.credential_type, saved.certificate, saved.pending_certificate) == ("secret", "", "")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
