"""Request, accept, list and manage links between projects from the command line, as staff.

Each link is printed as JSON, in the shape the REST and MCP faces answer with (link_summary).
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from broker_site.contracts import parsed
from broker_site.errors import BrokerError
from projects.auth import CLI
from projects.contracts import LinkTermsIn
from projects.links import ACTIONS, link_accept, link_manage, link_request
from projects.management.cli import as_command_error
from projects.models import Project, ProjectLink
from projects.selectors import link_summary, links_listed


class Command(BaseCommand):
    help = "Manage links between projects: list | request | accept | decline | suspend | resume | revoke."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="List links (without --project: every link).")
        listing.add_argument("--project")
        listing.add_argument("--state", choices=ProjectLink.State.values)
        request = actions.add_parser("request", help="Ask --target to link with --project, on these terms.")
        request.add_argument("--project", required=True)
        request.add_argument("--target", required=True, help="the id of the project asked")
        _terms_arguments(request)
        accept = actions.add_parser("accept", help="Accept, as --project (the one asked), a pending request; "
                                                   "terms given narrow the requested ones.")
        accept.add_argument("--project", required=True)
        accept.add_argument("link_id")
        _terms_arguments(accept)
        for name in ACTIONS:
            change = actions.add_parser(name, help=f"{name.title()} a link as --project, or as operator without it.")
            # Declining is the asked project's answer: an operator is no side that could give it.
            change.add_argument("--project", required=name == "decline")
            change.add_argument("link_id")

    def handle(self, *args, action: str, project: str | None, **options) -> None:
        side = _project(project) if project else None
        try:
            if action == "list":
                self._print(links_listed(side, CLI, state=options["state"], everyone=side is None))
                return
            if action == "request":
                link = link_request(side, options["target"], _terms(options), caller=CLI)
            elif action == "accept":
                link = link_accept(side, options["link_id"], _terms(options), caller=CLI)
            else:
                link = link_manage(side, options["link_id"], action, caller=CLI)
        except BrokerError as exc:
            raise as_command_error(exc) from None
        self._print(link_summary(link, side))

    def _print(self, data: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(data, indent=2))


def _terms_arguments(parser) -> None:
    parser.add_argument("--protocol", dest="protocols", action="append", metavar="NAME[@RANGE]",
                        help="a protocol allowed across the link, e.g. review@>=1.0.0,<2.0.0; repeatable "
                             "(none: any message)")
    parser.add_argument("--rate", type=int, help="messages a minute, each way")
    parser.add_argument("--max-bytes", type=int, help="the largest message")
    parser.add_argument("--direction", choices=ProjectLink.Direction.values)


def _terms(options: dict[str, Any]) -> dict[str, Any]:
    """The options as the services take terms, bounded by the same contract as REST and MCP."""
    given = {"allowed_protocols": options["protocols"], "rate_limit_per_minute": options["rate"],
             "max_message_bytes": options["max_bytes"], "direction": options["direction"]}
    return parsed(LinkTermsIn, given, what="terms").terms()


def _project(project_id: str) -> Project:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise CommandError(f"No project {project_id!r}.")
    return project
