from django.contrib import admin

from protocols.models import Protocol


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
