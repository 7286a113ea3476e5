from django.contrib import admin

from protocols.models import Protocol, ProtocolAdapter


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin):
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


@admin.register(ProtocolAdapter)
class ProtocolAdapterAdmin(admin.ModelAdmin):
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
