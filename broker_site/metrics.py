"""Prometheus metrics at /metrics, for operator keys: what the broker holds now, read from the database at scrape,
and what this host's workers did (broker_site.counters).

Read at scrape time from the database, the source of truth every process shares, so one scrape
of any process sees the whole broker, and no count is lost with a process. Labels are project
ids, states and reasons only (never a session, message or link id), so a series per project and
state at most. A scrape costs four statements per active project (routing.selectors.project_census)
and one for the links; protect it like the API: an operator key as `Authorization: Bearer`
(Prometheus' `authorization` setting), in the key's rate limit as on REST; anything else 401 or 403
in the SPEC error shape.
"""

from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from broker_site import counters
from broker_site.errors import BrokerError
from broker_site.errors_rest import broker_error_json
from projects.authentication import authenticate_request
from projects.models import LINK_REFUSALS
from routing.selectors import broker_census


def metrics(request) -> HttpResponse:
    try:
        census = broker_census(authenticate_request(request))  # the key's rate limit holds here too
    except BrokerError as exc:
        return broker_error_json(exc)
    registry = CollectorRegistry()
    registry.register(_BrokerState(census))
    registry.register(_ProcessEvents())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _BrokerState:
    """One scrape's reading of the database (routing.selectors.broker_census), as gauges."""

    def __init__(self, census: dict) -> None:
        self.census = census

    def collect(self):
        sessions = GaugeMetricFamily("broker_sessions", "Sessions by status.", labels=["project", "status"])
        messages = GaugeMetricFamily("broker_messages", "Messages held, by state.", labels=["project", "state"])
        dead = GaugeMetricFamily("broker_dead_letters", "Dead letters held, by reason.", labels=["project", "reason"])
        largest = GaugeMetricFamily("broker_largest_queue", "Pending messages of the project's longest queue.",
                                    labels=["project"])
        on_websocket = GaugeMetricFamily("broker_sessions_on_websocket", "Live sessions a WebSocket holds (the "
                                         "others poll: MCP, REST).", labels=["project"])
        for project_id, census in self.census["projects"].items():
            for status, n in census["sessions"].items():
                sessions.add_metric([project_id, status], n)
            for state, n in census["messages"].items():
                messages.add_metric([project_id, state], n)
            for reason, n in census["dead_letters"].items():
                dead.add_metric([project_id, reason], n)
            largest.add_metric([project_id], census["largest_queue"])
            on_websocket.add_metric([project_id], census["websocket"])
        yield from (sessions, messages, dead, largest, on_websocket)
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
        for link in self.census["links"]:
            pair = [link.source_id, link.target_project_id]
            live.add_metric([*pair, link.state], 1)
            sent.add_metric(pair, link.sent)
            delivered.add_metric(pair, link.delivered)
            for reason in LINK_REFUSALS:
                refused.add_metric([*pair, reason], getattr(link, f"refused_{reason}"))
        yield from (live, sent, delivered, refused)


class _ProcessEvents:
    """The events counted in broker_site.counters: every worker's on this host in multi-process mode, else this
    process's (with the client's own process and runtime figures)."""

    def collect(self):
        if counters.MULTIPROCESS:
            yield from multiprocess.MultiProcessCollector(None).collect()
        else:
            yield from REGISTRY.collect()
