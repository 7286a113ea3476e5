"""/readyz: unavailable without the database's schema, degraded but serving without Redis, ok otherwise."""

import pytest
from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from broker_site import health

pytestmark = pytest.mark.django_db


def test_ready_when_the_database_answers_and_every_migration_is_applied(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["database"], body["migrations"]) == ("ok", "up", "applied")
    assert body["redis"] == ("up" if settings.REDIS_URL else "not_configured")


def test_a_migration_not_applied_makes_it_unavailable(client, monkeypatch):
    monkeypatch.setattr(health, "_all_applied", False)
    MigrationRecorder.Migration.objects.filter(app="projects", name="0004_link_visibility").delete()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert (answer.json()["status"], answer.json()["migrations"]) == ("unavailable", "pending")


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_redis_gone_is_degraded_but_still_ready(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["redis"]) == ("degraded", "down")
