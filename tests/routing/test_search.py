"""search_messages: the database's own full-text search (FTS5 here, tsvector on PostgreSQL), ranked, with
snippets, over only the messages the caller's session sent or received."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from broker_site.contracts import parsed
from routing.contracts import SearchIn, SendIn
from routing.search import messages_searched
from routing.sending import message_send


def search(agent, query: str, **filters) -> dict:
    response = agent.client.get("/api/v1/messages/search/", {"query": query, **filters})
    assert response.status_code == 200, response.content
    return response.json()


def sent(response) -> str:
    assert response.status_code == 201, response.content
    return response.json()["message_id"]


def texts(found: dict) -> list[str]:
    return [r["payload"]["text"] for r in found["results"]]


def test_search_finds_an_earlier_decision_by_its_words_in_any_form_with_a_snippet(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    sent(ann.send("ben", {"text": "We decided to use PostgreSQL for the queue", "meta": {"topic": "storage"}}))
    sent(ann.send("ben", {"text": "lunch at noon"}))
    found = search(ben, "decide postgresql")
    assert texts(found) == ["We decided to use PostgreSQL for the queue"]
    assert "[PostgreSQL]" in found["results"][0]["snippet"] and found["results"][0]["untrusted"]
    assert texts(search(ben, "storage")) == ["We decided to use PostgreSQL for the queue"]  # nested text values
    assert search(ben, "topic")["results"] == []  # keys are not text values


def test_search_never_shows_another_sessions_private_message_or_another_projects(alpha, beta, agent):
    ann, ben, eve = agent(alpha, "ann"), agent(alpha, "ben"), agent(alpha, "eve")
    outsider, friend = agent(beta, "ann"), agent(beta, "ben")
    sent(ann.send("ben", {"text": "the deploy password rotates friday"}))
    sent(outsider.send("ben", {"text": "friday deploy in beta"}))
    assert texts(search(ben, "friday deploy")) == ["the deploy password rotates friday"]
    assert search(eve, "friday")["results"] == []
    assert texts(search(friend, "friday")) == ["friday deploy in beta"]
    assert texts(search(ann, "password")) == ["the deploy password rotates friday"]  # the sender sees its own


def test_search_filters_by_thread_sender_protocol_and_time_and_ranks_the_best_first(alpha, agent):
    ann, ben, cy = agent(alpha, "ann"), agent(alpha, "ben"), agent(alpha, "cy")
    first = sent(ann.send("cy", {"text": "cache the cache keys in the cache"}))
    sent(ben.send("cy", {"text": "a cache miss"}))
    sent(ann.send("cy", {"text": "cache again"}, thread_id=first))
    ranked = texts(search(cy, "cache"))
    assert ranked[0] == "cache the cache keys in the cache" and len(ranked) == 3
    assert texts(search(cy, "cache", sender="ben")) == ["a cache miss"]
    assert set(texts(search(cy, "cache", thread_id=first))) == {"cache the cache keys in the cache", "cache again"}
    assert search(cy, "cache", protocol="review")["results"] == []
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert search(cy, "cache", since=later)["results"] == []


def test_search_pages_and_refuses_what_it_cannot_search(alpha, agent):
    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    for n in range(5):
        sent(ann.send("ben", {"text": f"note number {n}"}))
    first = search(ben, "note", limit=3)
    second = search(ben, "note", limit=3, offset=first["next_offset"])
    assert first["next_offset"] == 3 and second["next_offset"] is None
    assert sorted(texts(first) + texts(second)) == [f"note number {n}" for n in range(5)]
    # Query syntax is read as words on every database: nothing here can be malformed.
    assert texts(search(ben, 'note" (number* -4')) == ["note number 4"]
    for bad in ({"query": "  ?! "}, {"query": "x" * 201}, {"query": "note", "limit": 51}):
        response = ben.client.get("/api/v1/messages/search/", bad)
        assert response.status_code == 400 and response.json()["error"] == "validation_error", bad


def test_an_acked_message_is_still_found_and_a_purged_one_is_not(alpha, agent):
    from routing.models import Message

    ann, ben = agent(alpha, "ann"), agent(alpha, "ben")
    keep, gone = sent(ann.send("ben", {"text": "alpha release notes"})), sent(ann.send("ben", {"text": "alpha draft"}))
    [*_] = ben.receive()
    ben.ack([keep, gone])
    Message.objects.filter(pk=gone).delete()  # what the retention purge does
    assert texts(search(ben, "alpha")) == ["alpha release notes"]


@pytest.mark.django_db(transaction=True)
def test_messages_stored_before_search_existed_are_found_after_the_upgrade(make_tenant):
    tenant = make_tenant("alpha")
    ann, _ = tenant.connect("ann")
    ben, _ = tenant.connect("ben")
    message_send(ann, SendIn(recipient_id="ben", payload={"text": "legacy decision about retries"}))
    executor = MigrationExecutor(connection)
    executor.migrate([("routing", "0005_thread_and_sender_name")])  # the schema before search
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # the upgrade indexes what was already there
    found = messages_searched(ben, parsed(SearchIn, {"query": "retries"}))
    assert [r["payload"]["text"] for r in found["results"]] == ["legacy decision about retries"]
