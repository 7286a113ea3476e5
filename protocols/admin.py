"""Protocols and adapters in the operators' dashboard: shown, not edited, deleted through their services."""

from django.contrib import admin

from broker_site.dashboard import ThroughServices, staff
from protocols.models import Protocol, ProtocolAdapter
from protocols.selectors import protocol_declared_by
from protocols.services import adapter_delete, protocol_delete


@admin.register(Protocol)
class ProtocolAdmin(ThroughServices):
    list_display = ("name", "version", "project", "shared", "author", "registered_at")
    list_filter = ("project", "shared")
    search_fields = ("name",)
    ordering = ("project", "name", "version_major", "version_minor", "version_patch")
    # A registered version is immutable (its UUID keys the validator cache, and sessions
    # negotiated against its schema), so the admin shows it but does not edit it.
    readonly_fields = ("id", "project", "name", "version", "version_major", "version_minor", "version_patch",
                       "schema", "capabilities", "tags", "author", "registered_at")

    def has_add_permission(self, request) -> bool:
        # Registration goes through protocol_register, which checks the schema and the limits.
        return False

    def refusal(self, obj: Protocol) -> str | None:
        users = protocol_declared_by(obj)
        if not users:
            return None
        return (f"{obj.name} {obj.version} is declared by live session(s) "
                f"{', '.join(s.label for s in users[:10])}; delete it once they disconnect or stop declaring it.")

    def delete_through_service(self, request, obj: Protocol) -> None:
        protocol_delete(obj.project, staff(request), obj.name, obj.version)


@admin.register(ProtocolAdapter)
class ProtocolAdapterAdmin(ThroughServices):
    list_display = ("protocol_name", "from_version", "to_version", "project", "operations_summary", "author",
                    "created_at")
    list_filter = ("project",)
    search_fields = ("protocol_name",)
    ordering = ("project", "protocol_name", "from_version", "to_version")
    # Like a protocol version, an adapter is replaced (delete, register again) rather than edited,
    # and registering goes through adapter_register, which checks the operations and the versions.
    readonly_fields = ("id", "project", "protocol_name", "from_version", "to_version", "operations", "author",
                       "created_at")

    @admin.display(description="operations")
    def operations_summary(self, adapter: ProtocolAdapter) -> str:
        parts = []
        for op in adapter.operations or []:
            if op.get("op") == "rename":
                parts.append(f"rename {op.get('from')} → {op.get('to')}")
            elif op.get("op") == "drop":
                parts.append(f"drop {op.get('field')}")
            else:
                parts.append(f"default {op.get('field')}")
        text = "; ".join(parts) or "(none: delivered as is)"
        return text if len(text) <= 120 else text[:117] + "..."

    def has_add_permission(self, request) -> bool:
        return False

    def delete_through_service(self, request, obj: ProtocolAdapter) -> None:
        adapter_delete(obj.project, staff(request), obj.pk)
