"""Messages in the operators' dashboard: read-only; dead letters replayed and purged through their services."""

from django.contrib import admin, messages

from broker_site.dashboard import ThroughServices, staff
from broker_site.errors import BrokerError
from routing.models import Message
from routing.services import dead_letter_replay, dead_letters_purge


@admin.register(Message)
class MessageAdmin(ThroughServices):
    list_display = ("id", "project", "sender", "recipient", "protocol_name", "protocol_version", "priority", "state",
                    "dead_reason", "attempts", "created_at")
    list_filter = ("state", "dead_reason", "priority", "project")
    search_fields = ("id", "correlation_id", "protocol_name")
    date_hierarchy = "created_at"
    actions = ("replay", "delete_selected")
    list_select_related = ("project", "sender", "recipient")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Only dead letters: mail still on its way belongs to its recipient until it is acked or dies.
        return obj is None or obj.state == Message.State.DEAD

    def delete_through_service(self, request, obj: Message) -> None:
        dead_letters_purge(obj.project, staff(request), [str(obj.pk)])

    @admin.action(description="Replay dead letters (fresh attempt count)")
    def replay(self, request, queryset) -> None:
        replayed = 0
        for message in queryset.filter(state=Message.State.DEAD).select_related("project"):
            try:
                dead_letter_replay(message.project, staff(request), str(message.pk))
                replayed += 1
            except BrokerError as exc:
                self.message_user(request, f"{message.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Replayed {replayed} dead letter(s).")
