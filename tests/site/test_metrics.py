"""/metrics: what the broker holds, read from the database at scrape, for operator keys only."""

from datetime import timedelta

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from projects.auth import CLI
from projects.links import link_accept, link_request
from routing.contracts import SendIn
from routing.sending import message_send
from routing.services import sweep
from tests.conftest import api_client


def scraped(key: str) -> dict[tuple[str, tuple], float]:
    answer = api_client(key).get("/metrics")
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.content.decode()) for sample in family.samples}


def test_an_operator_scrapes_sessions_messages_dead_letters_queues_and_links(alpha, beta, operator_key):
    sender, _ = alpha.connect("sender")
    alpha.connect("recipient")
    for n in range(3):
        message_send(sender, SendIn(recipient_id="recipient", payload={"n": n}))
    link = link_request(alpha.project, "beta", {}, caller=CLI)
    link_accept(beta.project, str(link.pk), {}, caller=CLI)
    beta.connect("platform")
    message_send(sender, SendIn(recipient_id="beta/platform", payload={"q": 1}))

    samples = scraped(operator_key)
    assert samples[("broker_sessions", (("project", "alpha"), ("status", "active")))] == 2
    assert samples[("broker_sessions", (("project", "beta"), ("status", "active")))] == 1
    assert samples[("broker_messages", (("project", "alpha"), ("state", "queued")))] == 3
    assert samples[("broker_messages", (("project", "beta"), ("state", "queued")))] == 1  # the recipient's project
    assert samples[("broker_largest_queue", (("project", "alpha"),))] == 3
    assert samples[("broker_dead_letters", (("project", "alpha"), ("reason", "queue_full")))] == 0
    assert samples[("broker_links", (("source", "alpha"), ("state", "active"), ("target", "beta")))] == 1
    assert samples[("broker_link_sent", (("source", "alpha"), ("target", "beta")))] == 1
    # No session, message or link id is ever a label.
    ids = {str(sender.pk), str(link.pk)}
    assert not any(value in ids for _, labels in samples for _, value in labels)


def test_only_operator_keys_read_metrics(alpha):
    assert api_client(alpha.admin_key).get("/metrics").status_code == 403
    refused = api_client(None).get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"
    assert refused["WWW-Authenticate"] == "Bearer"


def _moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_counters_move_with_requests_messages_acks_and_dead_letters(alpha, operator_key):
    _, sender_token = alpha.connect("sender")
    _, recipient_token = alpha.connect("recipient")
    before = scraped(operator_key)
    rest = api_client(alpha.agent_key, HTTP_X_SESSION_TOKEN=sender_token)
    for n in range(2):
        assert rest.post("/api/v1/messages/", {"recipient_id": "recipient", "payload": {"n": n}},
                         format="json").status_code == 201
    assert rest.post("/api/v1/messages/", {"recipient_id": "ghost", "payload": {}}, format="json").status_code == 404
    inbox = api_client(alpha.agent_key, HTTP_X_SESSION_TOKEN=recipient_token)
    received = inbox.post("/api/v1/messages/receive/", {}, format="json").json()["messages"]
    inbox.post("/api/v1/messages/ack/", {"message_ids": [received[0]["message_id"]]}, format="json")
    after = scraped(operator_key)

    assert _moved(before, after, "broker_requests_total", face="rest", project="alpha", code="ok") >= 4
    assert _moved(before, after, "broker_requests_total", face="rest", project="alpha", code="not_found") == 1
    assert _moved(before, after, "broker_message_events_total", project="alpha", event="sent") == 2
    assert _moved(before, after, "broker_message_events_total", project="alpha", event="delivered") == 2
    assert _moved(before, after, "broker_message_events_total", project="alpha", event="acked") == 1


def test_sweeper_counts_what_it_expires(alpha, operator_key):
    sender, _ = alpha.connect("sender")
    alpha.connect("recipient")
    message_send(sender, SendIn(recipient_id="recipient", payload={}, ttl=1))
    before = scraped(operator_key)
    assert sweep(now=timezone.now() + timedelta(seconds=5))["expired"] == 1
    after = scraped(operator_key)
    assert _moved(before, after, "broker_message_events_total", project="alpha", event="dead_expired") == 1
