"""Create, rotate, revoke and list API keys from the command line."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from broker_site.errors import BrokerError
from projects.auth import CLI
from projects.management.cli import as_command_error, connect_lines
from projects.models import ApiKey, Project
from projects.selectors import api_key_get, api_key_summary, api_keys_of
from projects.services import api_key_create, api_key_revoke, project_keys_rotate


class Command(BaseCommand):
    help = "Manage API keys: create | rotate | revoke | list."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Issue a key (shown once).")
        create.add_argument("--project", required=True)
        create.add_argument("--role", choices=ApiKey.Role.values, default=ApiKey.Role.AGENT)
        create.add_argument("--label", default="")
        create.add_argument("--expires-in", type=int, help="seconds until the key expires")
        rotate = actions.add_parser("rotate", help="Issue a replacement; the old key lives for the grace period.")
        rotate.add_argument("--project", required=True)
        which = rotate.add_mutually_exclusive_group(required=True)
        which.add_argument("--key-id")
        which.add_argument("--all", action="store_true", help="every active key of the project")
        rotate.add_argument("--grace", type=int, default=None, help="grace period in seconds (default 300)")
        revoke = actions.add_parser("revoke", help="End a key now.")
        revoke.add_argument("--project", required=True)
        revoke.add_argument("--key-id", required=True)
        listing = actions.add_parser("list", help="List a project's keys (never the secrets).")
        listing.add_argument("--project", required=True)

    def handle(self, *args, action: str, project: str, **options) -> None:
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"No project {project!r}.")
        try:
            if action == "create":
                expires = options["expires_in"]
                expires_at = timezone.now() + timedelta(seconds=expires) if expires else None
                key, raw = api_key_create(target, role=options["role"], label=options["label"], expires_at=expires_at)
                self._show_new(key, raw)
            elif action == "rotate":
                key = None if options["all"] else api_key_get(target, options["key_id"])
                rotations = project_keys_rotate(target, key=key, grace_period_seconds=options["grace"])
                for rotation in rotations:
                    self.stdout.write(f"Replaces {rotation.old.key_id}, which works until "
                                      f"{rotation.old.expires_at.isoformat()}.")
                    self._show_new(rotation.new, rotation.raw)
                if not rotations:
                    self.stdout.write(f"Project {target.pk} has no active keys to rotate.")
            elif action == "revoke":
                key = api_key_revoke(api_key_get(target, options["key_id"]))
                self.stdout.write(f"Revoked {key.project_id}_{key.key_id}.")
            else:
                for key in api_keys_of(target, CLI):
                    summary = api_key_summary(key)
                    state = "usable" if summary["usable"] else "revoked" if summary["revoked_at"] else "expired"
                    self.stdout.write(f"{summary['key_id']:10} {summary['role']:9} {state:8} {summary['label']}")
        except BrokerError as exc:
            raise as_command_error(exc) from None

    def _show_new(self, key: ApiKey, raw: str) -> None:
        self.stdout.write(f"New {key.role} key for project '{key.project_id}' (shown once):\n  {raw}\n")
        self.stdout.write("\n".join(connect_lines(raw)))
