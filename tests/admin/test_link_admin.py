"""The dashboard's links: listed with their traffic, suspended, resumed and revoked by an operator through link_manage."""

from projects.links import link_accept, link_request
from projects.models import AuditEvent, ProjectLink

LINKS = "/admin/projects/projectlink/"


def active_link(source, target) -> ProjectLink:
    link = link_request(source.project, target.project.pk, {"rate_limit_per_minute": 100})
    return link_accept(target.project, str(link.pk), {})


def test_link_changelist_and_detail_render_for_a_superuser(admin_client, alpha, beta):
    link = active_link(alpha, beta)
    ProjectLink.objects.filter(pk=link.pk).update(refused_rate=3)  # traffic the routing would have counted
    page = admin_client.get(LINKS)
    assert page.status_code == 200
    text = page.content.decode()
    assert "beta" in text and "rate 3" in text
    assert admin_client.get(f"{LINKS}?state__exact=active&q=beta").status_code == 200
    assert admin_client.get(f"{LINKS}{link.pk}/change/").status_code == 200


def test_suspend_and_resume_actions_go_through_link_manage(admin_client, alpha, beta):
    link = active_link(alpha, beta)
    admin_client.post(LINKS, {"action": "suspend", "_selected_action": [link.pk]})
    stored = ProjectLink.objects.get(pk=link.pk)
    assert (stored.state, stored.suspended_by) == ("suspended", "(operator)")
    assert AuditEvent.objects.filter(action="link_suspend", actor_key_id__startswith="admin:").exists()
    admin_client.post(LINKS, {"action": "resume", "_selected_action": [link.pk]})
    assert ProjectLink.objects.get(pk=link.pk).state == "active"


def test_an_action_a_link_cannot_take_is_reported_and_the_others_still_change(admin_client, alpha, beta, make_tenant):
    gamma = make_tenant("gamma")
    active = active_link(alpha, beta)
    pending = link_request(alpha.project, gamma.project.pk, {})
    page = admin_client.post(LINKS, {"action": "suspend", "_selected_action": [active.pk, pending.pk]}, follow=True)
    text = page.content.decode()
    assert "This link is pending" in text and "Suspended 1 " in text
    assert ProjectLink.objects.get(pk=active.pk).state == "suspended"
    assert ProjectLink.objects.get(pk=pending.pk).state == "pending"
    admin_client.post(LINKS, {"action": "revoke", "_selected_action": [active.pk, pending.pk]})
    assert set(ProjectLink.objects.values_list("state", flat=True)) == {"revoked"}
