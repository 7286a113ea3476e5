"""Create, list, configure, deactivate and activate projects from the command line."""

from django.core.management.base import BaseCommand, CommandError

from broker_site.errors import BrokerError
from projects.management.cli import as_command_error, connect_lines
from projects.models import Project
from projects.services import UPDATABLE_FIELDS, project_activate, project_create, project_update
from routing.lifecycle import project_deactivate


class Command(BaseCommand):
    help = "Manage projects: create | list | configure | deactivate | activate."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a project and print its first admin key (once).")
        create.add_argument("--id", dest="project_id", required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--description", default="")
        create.add_argument("--discoverable", action="store_true")
        actions.add_parser("list", help="List every project.")
        configure = actions.add_parser("configure", help="Change settings, quotas up to the broker's ceilings.")
        configure.add_argument("--id", dest="project_id", required=True)
        configure.add_argument("--set", dest="changes", action="append", required=True, metavar="NAME=VALUE",
                               help=f"one of {', '.join(UPDATABLE_FIELDS)}; repeatable")
        for name in ("deactivate", "activate"):
            sub = actions.add_parser(name)
            sub.add_argument("--id", dest="project_id", required=True)

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "create":
                project, _, raw = project_create(project_id=options["project_id"], name=options["name"],
                                                 description=options["description"],
                                                 discoverable=options["discoverable"])
                self.stdout.write(f"Created project '{project.pk}'. Its admin key (shown once):\n  {raw}\n")
                self.stdout.write("\n".join(connect_lines(raw)))
            elif action == "list":
                for project in Project.objects.order_by("pk"):
                    flag = "discoverable" if project.discoverable else ""
                    self.stdout.write(f"{project.pk:24} {project.status:9} {project.name}  {flag}")
            else:
                project = Project.objects.filter(pk=options["project_id"]).first()
                if project is None:
                    raise CommandError(f"No project {options['project_id']!r}.")
                if action == "configure":
                    project_update(project, _changes_from(options["changes"]))
                    self.stdout.write(f"Project '{project.pk}' changed: {', '.join(options['changes'])}.")
                    return
                change = project_deactivate if action == "deactivate" else project_activate
                change(project)
                self.stdout.write(f"Project '{project.pk}' is now {project.status}.")
        except BrokerError as exc:
            raise as_command_error(exc) from None


def _changes_from(pairs: list[str]) -> dict:
    """NAME=VALUE pairs as project_update takes them: whole numbers as numbers, true/false as booleans."""
    changes: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"--set takes NAME=VALUE, not {pair!r}.")
        lowered = value.strip().lower()
        changes[name.strip()] = (int(value) if value.strip().lstrip("-").isdigit()
                                 else lowered == "true" if lowered in {"true", "false"} else value)
    return changes
