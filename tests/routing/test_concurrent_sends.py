"""Sends that cross each other at the same moment all succeed: no deadlock, nothing lost."""

import threading

import pytest
from django.db import connection

from routing.contracts import BroadcastIn, SendIn
from routing.models import Message
from routing.sending import message_broadcast, message_send


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_two_sessions_sending_to_each_other_at_once_never_deadlock(make_tenant):
    tenant = make_tenant("alpha")
    tenant.project.max_queue_size = 10_000
    tenant.project.save()
    a, _ = tenant.connect("a")
    b, _ = tenant.connect("b")
    c, _ = tenant.connect("c")
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def pound(sender, recipient: str) -> None:
        try:
            start.wait()
            for n in range(40):
                message_send(sender, SendIn(recipient_id=recipient, payload={"n": n}))
                if n % 10 == 0:
                    message_broadcast(sender, BroadcastIn(payload={"n": n}))
        except BaseException as exc:  # collected, so the test fails with the real error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pound, args=args) for args in ((a, "b"), (b, "a"), (c, "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Message.objects.filter(state="queued").count() == 3 * 40 + 3 * 4 * 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_rounds_crossing_one_link_at_once_never_deadlock_and_every_message_is_counted(make_tenant):
    from projects.auth import CLI
    from projects.links import link_accept, link_request, traffic_flushed
    from routing.sending import messages_send, send_check

    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    for tenant in (alpha, beta):
        tenant.project.max_queue_size = 10_000
        tenant.project.save()
    link = link_accept(beta.project, str(link_request(alpha.project, "beta", {}, caller=CLI).pk), {}, caller=CLI)
    senders = [alpha.connect(f"a{n}")[0] for n in range(4)] + [beta.connect(f"b{n}")[0] for n in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(senders))

    def pound(sender, recipient: str) -> None:
        try:
            start.wait()
            for n in range(15):  # rounds of three, as a busy face makes them
                checked = [send_check(sender, SendIn(recipient_id=recipient, payload={"n": n, "k": k}))
                           for k in range(3)]
                errors.extend(o for o in messages_send(checked) if isinstance(o, BaseException))
        except BaseException as exc:  # collected, so the test fails with the real error
            errors.append(exc)
        finally:
            connection.close()

    targets = [f"beta/b{n}" for n in range(4)] + [f"alpha/a{n}" for n in range(4)]
    threads = [threading.Thread(target=pound, args=pair) for pair in zip(senders, targets, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Message.objects.filter(link=link).count() == 8 * 15 * 3
    traffic_flushed()  # what the threads counted in the last second
    link.refresh_from_db()
    assert link.sent == 8 * 15 * 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_heartbeats_and_keep_alive_beside_send_rounds_never_deadlock(make_tenant):
    """A round locks its recipients in id order; heartbeats (a claim's) and the keep-alive write many sessions'
    rows in one statement, so they must take them in the same order, or two such writers wait for each other."""
    from routing.live import sessions_held_renewed
    from routing.sending import messages_send, send_check
    from sessions_app.services import sessions_seen

    tenant = make_tenant("alpha")
    tenant.project.max_queue_size = 100_000
    tenant.project.save()
    sender, _ = tenant.connect("sender")
    sessions = [tenant.connect(f"r{n}")[0] for n in range(30)]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run(work) -> None:
        try:
            start.wait()
            for _ in range(25):
                work()
        except BaseException as exc:  # collected, so the test fails with the real error
            errors.append(exc)
        finally:
            connection.close()

    def send_round() -> None:
        outcomes = messages_send([send_check(sender, SendIn(recipient_id=s.name, payload={})) for s in sessions])
        errors.extend(o for o in outcomes if isinstance(o, BaseException))

    threads = [threading.Thread(target=run, args=(work,)) for work in (
        send_round,
        lambda: sessions_seen(list(reversed(sessions)), always=True),
        lambda: sessions_held_renewed([s.pk for s in reversed(sessions)], {"alpha": tenant.project}))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Message.objects.filter(sender=sender).count() == 25 * 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("connection.vendor != 'postgresql'",
                    reason="needs concurrent writers; SQLite runs one writer at a time by design")
def test_senders_racing_into_one_queue_fill_it_exactly_to_its_bound(make_tenant):
    """Each round reads the queue's size under the recipient's row lock, after any round it waited for committed:
    read any earlier (in the snapshot of a statement that began before the wait), two rounds both see room for
    the last message and the queue ends past its bound."""
    from broker_site.errors import QueueFull
    from routing.sending import messages_send, send_check

    tenant = make_tenant("alpha")
    tenant.project.max_queue_size = 60
    tenant.project.save()
    tenant.connect("inbox")
    senders = [tenant.connect(f"s{n}")[0] for n in range(8)]
    outcomes: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(senders))

    def pound(sender) -> None:
        try:
            start.wait()
            for n in range(15):
                outcomes.extend(messages_send([send_check(sender, SendIn(recipient_id="inbox", payload={"n": n}))]))
        except BaseException as exc:  # collected, so the test fails with the real error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pound, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    refused = [o for o in outcomes if isinstance(o, QueueFull)]
    assert (len(outcomes) - len(refused), len(refused)) == (60, 8 * 15 - 60)
    assert Message.objects.filter(state="queued").count() == 60
