"""The operators' live dashboard, inside the Django admin (staff login): a face like REST or MCP.

Three pages, each a template with a little JavaScript that asks a JSON view below for what is
current every few seconds (no page reload, no build step): the broker overview, a project's
sessions and dead letters, and a session's latest messages with a compose form. A person sends
as themselves through routing.human (their own session in the project, the one send path,
audited) and sees the agent's answer arrive on the same page. Reading is for staff; sending and
replaying need the `routing.change_message` permission (superusers have it).
"""

from collections.abc import Callable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from broker_site.contracts import parsed
from broker_site.dashboard import staff
from broker_site.errors import BrokerError, NotFound, ValidationFailed
from broker_site.errors_rest import broker_error_json
from broker_site.jsonbounds import json_body
from projects.selectors import project_for_staff
from routing import overview
from routing.contracts import BroadcastIn, SendIn
from routing.human import human_message_send, human_replies_read
from routing.selectors import dead_letters_listed, message_summary
from routing.services import dead_letter_replay

SENDS = "routing.change_message"
COMPOSE_BODY_LIMIT = 256 * 1024  # a person types this; a larger payload belongs to an agent


def _answer(view: Callable[..., dict]) -> Callable[..., HttpResponse]:
    """A JSON view for the pages' scripts: broker errors in the SPEC shape, nothing cached."""

    def answered(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            response = JsonResponse(view(request, *args, **kwargs))
        except BrokerError as exc:
            response = broker_error_json(exc)
        response["Cache-Control"] = "no-store"
        return response

    return answered


def _may_send(request: HttpRequest) -> None:
    if not request.user.has_perm(SENDS):
        raise PermissionDenied


def _shown(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page: a project or session that is not there is the admin's own 404."""

    def shown(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound:
            raise Http404 from None

    return shown


def _page(request: HttpRequest, template: str, title: str, **context) -> HttpResponse:
    return render(request, template, {**admin.site.each_context(request), "title": title,
                                      "may_send": request.user.has_perm(SENDS), **context})


@require_GET
def broker_page(request):
    return _page(request, "admin/broker/overview.html", "Broker overview")


@require_GET
@_answer
def broker_now(request):
    return overview.broker_overview()


@require_GET
@_shown
def project_page(request, project_id: str):
    project = project_for_staff(project_id)
    return _page(request, "admin/broker/project.html", f"Project {project.pk}", project=project)


@require_GET
@_answer
def project_now(request, project_id: str):
    project = project_for_staff(project_id)
    return {"sessions": overview.project_sessions(project),
            "dead_letters": dead_letters_listed(project, staff(request))["dead_letters"]}


@require_GET
@_shown
def session_page(request, project_id: str, session_ref: str):
    project = project_for_staff(project_id)
    session = overview.session_messages(project, session_ref)
    return _page(request, "admin/broker/session.html", f"Session {session['name'] or session['session_id']}",
                 project=project, session=session)


@require_GET
@_answer
def session_now(request, project_id: str, session_ref: str):
    """The session's latest messages; for a person allowed to send, their own new mail is read (acked) first,
    so an agent's answer to them shows as acked: seen on this page."""
    project = project_for_staff(project_id)
    if request.user.has_perm(SENDS):
        human_replies_read(project, request.user.get_username())
    return overview.session_messages(project, session_ref)


@require_GET
@_answer
def message_payload(request, project_id: str, message_id: str):
    return overview.message_payload_shown(project_for_staff(project_id), message_id)


@require_POST
@_answer
def compose(request, project_id: str):
    """Send as the signed-in person: to `recipient_id` (a session id or name), or to every live session."""
    _may_send(request)
    project = project_for_staff(project_id)
    if len(request.body) > COMPOSE_BODY_LIMIT:
        raise ValidationFailed(f"A message from the dashboard is at most {COMPOSE_BODY_LIMIT} bytes.",
                               field="payload", limit=COMPOSE_BODY_LIMIT)
    data = json_body(request)
    if not isinstance(data, dict):
        raise ValidationFailed("Send a JSON object.", field="$")
    if data.get("recipient_id"):
        message = parsed(SendIn, data)
    else:
        message = parsed(BroadcastIn, {k: v for k, v in data.items() if k != "recipient_id"})
    return human_message_send(project, staff(request), request.user.get_username(), message)


@require_POST
@_answer
def replay(request, project_id: str, message_id: str):
    _may_send(request)
    accepted = dead_letter_replay(project_for_staff(project_id), staff(request), message_id)
    return {"replayed": message_summary(accepted.message, include_payload=False)}


def _staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("", _staff(broker_page), name="broker-overview"),
    path("now.json", _staff(broker_now), name="broker-overview-now"),
    path("projects/<str:project_id>/", _staff(project_page), name="broker-project"),
    path("projects/<str:project_id>/now.json", _staff(project_now), name="broker-project-now"),
    path("projects/<str:project_id>/send", _staff(compose), name="broker-compose"),
    path("projects/<str:project_id>/messages/<str:message_id>/payload.json", _staff(message_payload),
         name="broker-payload"),
    path("projects/<str:project_id>/dead-letters/<str:message_id>/replay", _staff(replay), name="broker-replay"),
    path("projects/<str:project_id>/sessions/<str:session_ref>/", _staff(session_page), name="broker-session"),
    path("projects/<str:project_id>/sessions/<str:session_ref>/now.json", _staff(session_now),
         name="broker-session-now"),
]
