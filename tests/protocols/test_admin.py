"""The admin shows protocols but does not create or edit their schemas."""

from django.test import Client

from projects.auth import CLI
from protocols.services import protocol_register


def test_admin_lists_and_shows_protocols_read_only(alpha, django_user_model):
    protocol = protocol_register(alpha.project, CLI, name="chat", version="1.0.0", schema={"type": "object"})
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    listing = client.get("/admin/protocols/protocol/?q=chat")
    assert listing.status_code == 200 and b"chat" in listing.content
    assert client.get(f"/admin/protocols/protocol/{protocol.pk}/change/").status_code == 200
    assert client.get("/admin/protocols/protocol/add/").status_code == 403
