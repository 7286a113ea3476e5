"""Sessions in the operators' dashboard: watch them, disconnect or delete them. Agents (and broker_session) create them."""

from django.contrib import admin

from broker_site.dashboard import ThroughServices, done_for_each, staff
from routing.lifecycle import session_delete
from sessions_app.models import AgentSession, SessionBlock
from sessions_app.services import session_end, session_unblock


@admin.register(AgentSession)
class AgentSessionAdmin(ThroughServices):
    list_display = ("label", "project", "status", "connected_at", "last_heartbeat_at", "disconnect_reason")
    list_filter = ("project",)
    search_fields = ("name", "id")
    actions = ("disconnect", "delete_selected")
    readonly_fields = ("id", "project", "connected_at", "last_heartbeat_at", "disconnected_at", "disconnect_reason",
                       "connection_epoch", "created_by_key", "provisioned", "supported_protocols", "supported_features")
    exclude = ("token_digest",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def deletion_summary(self, obj: AgentSession) -> list[str]:
        return [f"Session {obj.label} of {obj.project_id} and its mailbox ({obj.inbox.count()} messages); "
                "if it is connected, it is disconnected first and its peers are told."]

    def delete_through_service(self, request, obj: AgentSession) -> None:
        session_delete(obj, caller=staff(request))

    @admin.action(description="Disconnect (queue kept for a resume)")
    def disconnect(self, request, queryset) -> None:
        done_for_each(self, request, queryset.select_related("project"), session_end, "Disconnected")


@admin.register(SessionBlock)
class SessionBlockAdmin(ThroughServices):
    """Blocks are the blocking session's to make; an operator can see and lift them."""

    list_display = ("blocker", "blocked", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_through_service(self, request, obj: SessionBlock) -> None:
        session_unblock(obj.blocker, str(obj.blocked_id))
