"""Messages in the operators' dashboard: read-only, with dead-letter replay through the service."""

from django.contrib import admin, messages

from broker_site.errors import BrokerError
from routing.models import Message
from routing.services import dead_letter_replay


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "sender", "recipient", "protocol_name", "protocol_version", "priority", "state",
                    "dead_reason", "attempts", "created_at")
    list_filter = ("state", "dead_reason", "priority", "project")
    search_fields = ("id", "correlation_id", "protocol_name")
    date_hierarchy = "created_at"
    actions = ("replay",)
    list_select_related = ("project", "sender", "recipient")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Replay dead letters (fresh attempt count)")
    def replay(self, request, queryset) -> None:
        replayed = 0
        for message in queryset.filter(state=Message.State.DEAD).select_related("project"):
            try:
                dead_letter_replay(message.project, None, str(message.pk))
                replayed += 1
            except BrokerError as exc:
                self.message_user(request, f"{message.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Replayed {replayed} dead letter(s).")
