"""A link's traffic counts (projects.links._Traffic): kept by the process, written within a second, never lost
to a failed write, and written by the sweeper's pass too."""

from collections import Counter

import pytest
from django.db import DatabaseError

from broker_site.sweeper import sweep_pass
from projects import links
from projects.auth import CLI
from projects.links import link_accept, link_request, traffic, traffic_counted, traffic_flushed
from projects.models import ProjectLink


@pytest.fixture
def link(alpha, beta):
    requested = link_request(alpha.project, "beta", {}, caller=CLI)
    return link_accept(beta.project, str(requested.pk), {}, caller=CLI)


@pytest.fixture(autouse=True)
def _not_written_by_counting(monkeypatch):
    traffic_flushed()  # nothing left over from another test
    monkeypatch.setattr(links, "TRAFFIC_FLUSH_SECONDS", 3600)  # only a reader, the sweeper or the test writes


def _sent(link) -> int:
    return ProjectLink.objects.get(pk=link.pk).sent


def test_counts_wait_in_the_process_until_written(link):
    traffic_counted("sent", Counter({link.pk: 3}))
    assert _sent(link) == 0
    traffic_flushed()
    assert _sent(link) == 3


def test_a_write_that_fails_keeps_its_counts_for_the_next(link, monkeypatch):
    traffic_counted("sent", Counter({link.pk: 2}))

    class Unwritable:
        def filter(self, **kwargs):
            raise DatabaseError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(ProjectLink, "objects", Unwritable())
        traffic_flushed()  # logged link_traffic_unwritten; nothing raised to the caller
    assert traffic.pending == Counter({(link.pk, "sent"): 2})
    traffic_counted("sent", Counter({link.pk: 1}))
    traffic_flushed()
    assert _sent(link) == 3 and not traffic.pending


def test_the_sweepers_pass_writes_them(link):
    traffic_counted("delivered", Counter({link.pk: 4}))
    sweep_pass()
    assert ProjectLink.objects.get(pk=link.pk).delivered == 4
