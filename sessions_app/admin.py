"""Sessions in the operators' dashboard: watch them, disconnect them. Agents create them."""

from django.contrib import admin

from sessions_app.models import AgentSession, SessionBlock
from sessions_app.services import session_disconnect


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    list_display = ("label", "project", "status", "connected_at", "last_heartbeat_at", "disconnect_reason")
    list_filter = ("project",)
    search_fields = ("name", "id")
    actions = ("disconnect",)
    readonly_fields = ("id", "project", "connected_at", "last_heartbeat_at", "disconnected_at", "disconnect_reason",
                       "connection_epoch", "created_by_key", "supported_protocols", "supported_features")
    exclude = ("token_digest",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Disconnect (queue kept for a resume)")
    def disconnect(self, request, queryset) -> None:
        for session in queryset.select_related("project"):
            session_disconnect(session, reason="operator")
        self.message_user(request, f"Disconnected {queryset.count()} session(s).")


@admin.register(SessionBlock)
class SessionBlockAdmin(admin.ModelAdmin):
    list_display = ("blocker", "blocked", "created_at")
