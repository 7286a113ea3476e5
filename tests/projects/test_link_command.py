"""broker_link: links between projects from the command line, through the same services as REST and MCP."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from projects.models import AuditEvent, ProjectLink


def run(*args) -> dict:
    out = io.StringIO()
    call_command("broker_link", *args, stdout=out)
    return json.loads(out.getvalue())


def test_request_accept_list_and_suspend_as_operator(alpha, beta):
    asked = run("request", "--project", "alpha", "--target", "beta", "--protocol", "review@>=1.0.0",
                "--protocol", "chat", "--rate", "100", "--direction", "source_to_target")
    assert (asked["state"], asked["side"], asked["direction"]) == ("pending", "source", "source_to_target")
    assert asked["allowed_protocols"] == [{"name": "review", "version_range": ">=1.0.0"},
                                          {"name": "chat", "version_range": None}]
    link_id = asked["link_id"]

    accepted = run("accept", "--project", "beta", link_id, "--rate", "10", "--protocol", "chat")
    assert (accepted["state"], accepted["side"], accepted["rate_limit_per_minute"]) == ("active", "target", 10)
    assert accepted["allowed_protocols"] == [{"name": "chat", "version_range": None}]

    [listed] = run("list", "--project", "alpha")["links"]
    assert (listed["link_id"], listed["rate_limit_per_minute"], listed["requested_terms"]["rate_limit_per_minute"]) == (
        link_id, 10, 100)

    suspended = run("suspend", link_id)
    assert (suspended["state"], suspended["suspended_by"]) == ("suspended", "operator")
    assert ProjectLink.objects.get(pk=link_id).state == "suspended"
    assert AuditEvent.objects.filter(action="link_suspend", actor_key_id="cli").exists()
    everything = run("list", "--state", "suspended")
    assert [link["link_id"] for link in everything["links"]] == [link_id]
    assert run("list", "--state", "active")["count"] == 0


def test_a_side_cannot_resume_what_the_operator_suspended(alpha, beta):
    link_id = run("request", "--project", "alpha", "--target", "beta")["link_id"]
    run("accept", "--project", "beta", link_id)
    run("suspend", link_id)
    with pytest.raises(CommandError, match="forbidden"):
        run("resume", "--project", "alpha", link_id)
    assert run("resume", link_id)["state"] == "active"


def test_bad_input_is_a_command_error_with_the_brokers_message(alpha, beta):
    with pytest.raises(CommandError, match="No project"):
        run("request", "--project", "ghost", "--target", "beta")
    with pytest.raises(CommandError, match="validation_error: A project needs no link to itself"):
        run("request", "--project", "alpha", "--target", "alpha")
    with pytest.raises(CommandError, match=r"validation_error.*rate_limit_per_minute"):
        run("request", "--project", "alpha", "--target", "beta", "--rate", "0")
    link_id = run("request", "--project", "alpha", "--target", "beta", "--rate", "10")["link_id"]
    with pytest.raises(CommandError, match="narrow the requested terms"):
        run("accept", "--project", "beta", link_id, "--rate", "11")
    with pytest.raises(CommandError, match="not_found"):
        run("revoke", "--project", "beta", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="link id"):
        run("revoke", "not-a-link")
    assert ProjectLink.objects.get(pk=link_id).state == "pending"
