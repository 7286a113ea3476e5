"""Prometheus metrics at /metrics, for operator keys: what the broker holds now, read from the database at scrape.

Read at scrape time from the database, the source of truth every process shares, so one scrape
of any process sees the whole broker, and no count is lost with a process. Labels are project
ids, states and reasons only (never a session, message or link id), so a series per project and
state at most. A scrape costs four statements per active project (routing.selectors.project_census)
and one for the links; protect it like the API: an operator key as `Authorization: Bearer`
(Prometheus' `authorization` setting), anything else 401 or 403 in the SPEC error shape.
"""

from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from broker_site.errors import BrokerError, http_headers
from projects.auth import Caller, authenticate, credentials_from_headers
from projects.models import LINK_REFUSALS, ApiKey, Project
from projects.selectors import links_live_for_operators
from routing.selectors import project_census


def metrics(request) -> HttpResponse:
    try:
        raw, project_id = credentials_from_headers(request.headers)
        caller = authenticate(raw, project_id, remote_addr=request.META.get("REMOTE_ADDR", ""))
        caller.require_role(ApiKey.Role.OPERATOR, "read the broker's metrics")
    except BrokerError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status, headers=http_headers(exc))
    registry = CollectorRegistry()
    registry.register(_BrokerState(caller))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _BrokerState:
    """One scrape's reading of the database, as gauges."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    def collect(self):
        sessions = GaugeMetricFamily("broker_sessions", "Sessions by status.", labels=["project", "status"])
        messages = GaugeMetricFamily("broker_messages", "Messages held, by state.", labels=["project", "state"])
        dead = GaugeMetricFamily("broker_dead_letters", "Dead letters held, by reason.", labels=["project", "reason"])
        largest = GaugeMetricFamily("broker_largest_queue", "Pending messages of the project's longest queue.",
                                    labels=["project"])
        for project in Project.objects.filter(status=Project.Status.ACTIVE).order_by("pk"):
            census = project_census(project)
            for status, n in census["sessions"].items():
                sessions.add_metric([project.pk, status], n)
            for state, n in census["messages"].items():
                messages.add_metric([project.pk, state], n)
            for reason, n in census["dead_letters"].items():
                dead.add_metric([project.pk, reason], n)
            largest.add_metric([project.pk], census["largest_queue"])
        yield from (sessions, messages, dead, largest)
        yield from self._links()

    def _links(self):
        live = GaugeMetricFamily("broker_links", "Links pending, active or suspended.",
                                 labels=["source", "target", "state"])
        # Totals kept on each link: counters to Prometheus, though they start over when a link is made again.
        sent = GaugeMetricFamily("broker_link_sent", "Messages sent across the link.", labels=["source", "target"])
        delivered = GaugeMetricFamily("broker_link_delivered", "First deliveries across the link.",
                                      labels=["source", "target"])
        refused = GaugeMetricFamily("broker_link_refused", "Messages the link refused, by reason.",
                                    labels=["source", "target", "reason"])
        for link in links_live_for_operators(self.caller):
            pair = [link.source_id, link.target_project_id]
            live.add_metric([*pair, link.state], 1)
            sent.add_metric(pair, link.sent)
            delivered.add_metric(pair, link.delivered)
            for reason in LINK_REFUSALS:
                refused.add_metric([*pair, reason], getattr(link, f"refused_{reason}"))
        yield from (live, sent, delivered, refused)
