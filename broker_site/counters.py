"""What this process has done since it started, for /metrics: counters, histograms, live gauges.

broker_site.metrics adds what the database holds now (sessions, queues, dead letters, links)
at scrape time; these are the events the database does not keep: requests per face and
outcome, messages sent / delivered / acked / dead / redelivered, send-to-push latency,
WebSocket connections, waiting long polls, MCP sessions, push fallbacks, database rounds.

Several worker processes on one host (uvicorn --workers N) share their counts through
prometheus-client's multi-process mode: set PROMETHEUS_MULTIPROC_DIR to an empty directory
before the workers start, and a scrape of any worker sums them all. Without it a scrape
sees the process that answered. Labels are bounded: a face, a project id, an error code or
an operation, never a session or message id.
"""

import os

from prometheus_client import Counter, Gauge, Histogram, multiprocess

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

requests = Counter("broker_requests", "Requests (REST calls, MCP tool calls, WebSocket frames) by outcome: ok or "
                   "the error code.", ["face", "project", "code"])
messages = Counter("broker_message_events", "Messages sent, delivered (first and again), acked, redelivered and "
                   "dead (by reason), per recipient project.", ["project", "event"])
send_to_push = Histogram("broker_send_to_push_seconds", "From a message's acceptance to its push on a WebSocket.",
                         buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
websockets = Gauge("broker_websocket_connections", "Open WebSocket connections.", multiprocess_mode="livesum")
long_polls = Gauge("broker_long_polls_waiting", "Receives (MCP, REST) waiting for mail.", multiprocess_mode="livesum")
mcp_sessions = Gauge("broker_mcp_sessions", "Open MCP sessions (session-based protocol).", multiprocess_mode="livesum")
push_fallbacks = Counter("broker_push_fallbacks", "Times the channel layer failed and push fell back to polling "
                         "the database.", ["where"])
for _where in ("publish", "listen"):  # at zero from the start, so an alert on its increase sees the first one
    push_fallbacks.labels(_where)
rounds = Histogram("broker_db_round_size", "Requests answered by one database round.", ["operation"],
                   buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
round_seconds = Histogram("broker_db_round_seconds", "Time one database round took.", ["operation"],
                          buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))


def request_counted(face: str, project: str | None, code: str) -> None:
    requests.labels(face, project or "", code).inc()


def messages_counted(event: str, by_project: dict[str, int]) -> None:
    """`event` happened to `n` messages of each project in `by_project` (one increment per project, not per copy)."""
    for project, n in by_project.items():
        if n:
            messages.labels(project, event).inc(n)


def process_gone() -> None:
    """At shutdown, in multi-process mode: this worker's live gauges (connections, polls, MCP sessions) stop
    counting in the others' scrapes. Its counters stay, as Prometheus counters must."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())
