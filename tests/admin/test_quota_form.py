"""The dashboard sets quotas up to the broker's ceilings, like every other face (projects.quotas)."""

from projects.models import Project
from tests.admin.test_admin import PROJECT_FORM


def test_the_dashboard_refuses_a_quota_over_the_ceiling_as_a_form_error(admin_client, settings):
    settings.BROKER = {**settings.BROKER, "QUOTA_CEILINGS": {**settings.BROKER["QUOTA_CEILINGS"], "max_sessions": 500}}
    over = admin_client.post("/admin/projects/project/add/", {**PROJECT_FORM, "max_sessions": 501})
    assert over.status_code == 200 and "BROKER_CEILING_MAX_SESSIONS" in over.content.decode()
    assert not Project.objects.filter(pk="team-x").exists()

    admin_client.post("/admin/projects/project/add/", {**PROJECT_FORM, "max_sessions": 500})
    assert Project.objects.get(pk="team-x").max_sessions == 500
    raised = admin_client.post("/admin/projects/project/team-x/change/", {**PROJECT_FORM, "max_sessions": 900})
    assert "BROKER_CEILING_MAX_SESSIONS" in raised.content.decode()
    assert Project.objects.get(pk="team-x").max_sessions == 500
