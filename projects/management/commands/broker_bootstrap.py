"""Create the `default` project on first run; safe to run on every start."""

from django.core.management.base import BaseCommand

from projects.management.cli import connect_lines
from projects.models import ApiKey, Project
from projects.services import api_key_create, project_create

DEFAULT_PROJECT = "default"


class Command(BaseCommand):
    help = "Create the default project and print its first keys (only when it creates them)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help="The broker's public base URL for the printed lines.")

    def handle(self, *args, url=None, **options) -> None:
        if Project.objects.filter(pk=DEFAULT_PROJECT).exists():
            self.stdout.write(
                f"Project '{DEFAULT_PROJECT}' exists. Keys are shown only when created; make another with:\n"
                f"  python manage.py broker_key create --project {DEFAULT_PROJECT} --role agent")
            return
        project, _, admin_raw = project_create(project_id=DEFAULT_PROJECT, name="Default",
                                               description="Created by broker_bootstrap.")
        _, agent_raw = api_key_create(project, role=ApiKey.Role.AGENT, label="bootstrap agent key")
        lines = [
            f"Created project '{DEFAULT_PROJECT}'. These keys are shown once; store them now.",
            f"  admin key (manages keys, protocols, settings): {admin_raw}",
            f"  agent key (for your agents):                   {agent_raw}",
            "",
            *connect_lines(agent_raw, url),
        ]
        self.stdout.write("\n".join(lines))
