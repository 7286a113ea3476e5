"""Step 1 of a send on the event loop (`in_place`): done there when it needs no database, else NeedsDatabase
before it has changed anything, and done again on a thread, where a refusal is counted and audited once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker_site.errors import PayloadTooLarge
from broker_site.workers import NeedsDatabase
from projects.models import AuditEvent
from projects.ratelimit import _chunk, window_share
from routing.contracts import SendIn
from routing.sending import send_check
from tests.routing.test_cross_project import linked, refusals


@pytest.fixture
def across(alpha, beta):
    sender, _ = alpha.connect("sender")
    beta.connect("platform")
    link = linked(alpha, beta, max_message_bytes=100)
    return sender, link


def denied() -> int:
    return AuditEvent.objects.filter(action="cross_project_send", outcome="denied").count()


def test_a_send_over_a_link_the_process_keeps_is_checked_without_the_database(across):
    sender, link = across
    with pytest.raises(NeedsDatabase):  # the first one reads the link
        send_check(sender, SendIn(recipient_id="beta/platform", payload={}), in_place=True)
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}))
    with CaptureQueriesContext(connection) as queries:
        checked = send_check(sender, SendIn(recipient_id="beta/platform", payload={"n": 1}), in_place=True)
    assert queries.captured_queries == []
    assert checked.route.link.pk == link.pk and checked.route.project.pk == "beta"


def test_a_refusal_on_the_event_loop_is_left_to_the_thread_which_counts_and_audits_it_once(across):
    sender, link = across
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}))  # the link is kept
    too_large = SendIn(recipient_id="beta/platform", payload={"text": "x" * 200})
    with pytest.raises(NeedsDatabase):
        send_check(sender, too_large, in_place=True)
    assert denied() == 0 and refusals(link).get("size", 0) == 0
    with pytest.raises(PayloadTooLarge):
        send_check(sender, too_large)
    assert denied() == 1 and refusals(link)["size"] == 1


def test_a_rate_share_to_refill_is_left_to_the_thread_and_nothing_is_taken(across):
    sender, link = across
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}))
    share = window_share(f"linkrate:{link.pk}:alpha")
    share.tokens = 0
    with pytest.raises(NeedsDatabase):
        send_check(sender, SendIn(recipient_id="beta/platform", payload={}), in_place=True)
    assert share.tokens == 0
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}))  # the thread refills, and takes one
    assert share.tokens == _chunk(link.rate_limit_per_minute) - 1


def test_a_protocol_message_is_checked_on_a_thread(alpha):
    sender, _ = alpha.connect("sender")
    with pytest.raises(NeedsDatabase):
        send_check(sender, SendIn(recipient_id="x", payload={}, protocol_name="chat"), in_place=True)


def test_a_free_form_message_inside_the_project_is_checked_in_place(alpha):
    sender, _ = alpha.connect("sender")
    with CaptureQueriesContext(connection) as queries:
        checked = send_check(sender, SendIn(recipient_id="someone", payload={"n": 1}), in_place=True)
    assert queries.captured_queries == [] and checked.route.link is None


def test_the_event_loop_does_not_wait_for_a_thread_refilling_the_rate_share(across):
    """A thread holding the share's lock may be waiting on Redis: the loop leaves the send to a thread instead."""
    sender, link = across
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}))
    share = window_share(f"linkrate:{link.pk}:alpha")
    tokens = share.tokens
    with share.lock:
        with pytest.raises(NeedsDatabase):
            send_check(sender, SendIn(recipient_id="beta/platform", payload={}), in_place=True)
    assert share.tokens == tokens
    send_check(sender, SendIn(recipient_id="beta/platform", payload={}), in_place=True)
    assert share.tokens == tokens - 1
