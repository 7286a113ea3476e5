"""Messages: persisted before anyone is told, so nothing accepted is ever lost."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from projects.models import Project, ProjectLink
from sessions_app.models import AgentSession


class Message(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"  # accepted and persisted, waiting for its recipient
        DELIVERED = "delivered"  # handed to a connection or returned by a receive; waiting for an ack
        ACKED = "acked"
        DEAD = "dead"

    class DeadReason(models.TextChoices):
        QUEUE_FULL = "queue_full"
        EXPIRED = "expired"
        MAX_ATTEMPTS = "max_attempts"
        REJECTED = "rejected"

    class Priority(models.IntegerChoices):
        LOW = 0, "low"
        NORMAL = 1, "normal"
        HIGH = 2, "high"
        URGENT = 3, "urgent"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(AgentSession, null=True, on_delete=models.SET_NULL, related_name="sent_messages")
    recipient = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="inbox")
    # Every copy of one broadcast shares this id; a 1:1 message has none.
    broadcast_id = models.UUIDField(null=True, blank=True, db_index=True)
    protocol_name = models.CharField(max_length=100, blank=True, default="")
    protocol_version = models.CharField(max_length=32, blank=True, default="")
    transformed_from = models.CharField(max_length=32, blank=True, default="")
    transformed_to = models.CharField(max_length=32, blank=True, default="")
    payload = models.JSONField()
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    ttl = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    reply_to = models.CharField(max_length=100, blank=True, default="")
    # A message from another project came over this link; `project` is always the recipient's.
    link = models.ForeignKey(ProjectLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             db_index=False)
    sender_project = models.CharField(max_length=64, blank=True, default="", help_text="set across a link only")
    # Sent by a person from the dashboard: their user name, kept with the message (its session may go).
    sender_human = models.CharField(max_length=150, blank=True, default="")
    # The sending session's name when it sent: what the recipient is told of who wrote (provenance), with no join.
    sender_name = models.CharField(max_length=100, blank=True, default="")
    # The conversation it belongs to: a reply's is its parent's; a message that answers nothing starts one (its own
    # id; a broadcast's: its broadcast_id, which every copy shares). Null only on messages older than threads.
    thread_id = models.UUIDField(null=True, blank=True)

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    dead_reason = models.CharField(max_length=16, choices=DeadReason.choices, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When a delivered, unacked message becomes deliverable again.
    redeliver_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        indexes = [
            # "Next messages for this recipient": pending ones by priority, then age.
            models.Index(fields=["recipient", "state", "-priority", "created_at"], name="message_inbox"),
            # The sweeper's two scans, kept small by covering only the rows they can match.
            models.Index(fields=["redeliver_at"], name="message_redeliver_due",
                         condition=Q(state="delivered")),
            models.Index(fields=["expires_at"], name="message_expiry_due",
                         condition=Q(state__in=["queued", "delivered"], expires_at__isnull=False)),
            models.Index(fields=["project", "state", "-dead_at"], name="message_dead_letters"),
            # get_thread: a thread's messages in order.
            models.Index(fields=["thread_id", "created_at"], name="message_thread"),
            # A link's end (a project deleted) sets link to NULL on its messages: found here, not by a scan of all.
            models.Index(fields=["link"], name="message_across_link", condition=Q(link__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.id} -> {self.recipient_id} ({self.state})"


# Waiting for its recipient: queued, or handed over and not yet acked. These count against the queue size.
PENDING = (Message.State.QUEUED, Message.State.DELIVERED)
