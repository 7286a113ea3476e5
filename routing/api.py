"""REST face for messages and dead letters. Session calls prove the session with X-Session-Token."""


from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from broker_site.contracts import Contract, parsed
from broker_site.errors import BrokerError
from broker_site.errors_rest import broker_error_json
from broker_site.jsonbounds import json_body
from broker_site.rest import SESSION_TOKEN_HEADER, Endpoint, acting_session, body, query, query_parameters, rest_routes
from projects.authentication import authenticate_request
from routing import replies, selectors, services
from routing.contracts import AckIn, BroadcastIn, PurgeIn, ReceiveIn, RequestReplyIn, SearchIn, SendIn, ThreadIn
from routing.receive import ClientLink, claim_and_beat, messages_receive
from routing.search import messages_searched
from routing.sending import message_broadcast, message_send
from sessions_app.models import AgentSession

C = TypeVar("C", bound=Contract)


class SendView(Endpoint, route="messages/"):
    @extend_schema(operation_id="message_send", request=SendIn, responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Send one message; answered once it is persisted")
    def post(self, request):
        accepted = message_send(acting_session(request), body(request, SendIn))
        return Response(accepted.as_dict(), status=status.HTTP_201_CREATED)


class BroadcastView(Endpoint, route="messages/broadcast/"):
    @extend_schema(operation_id="message_broadcast", request=BroadcastIn, responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Send to every live session of the project but you")
    def post(self, request):
        result = message_broadcast(acting_session(request), body(request, BroadcastIn))
        return Response(result, status=status.HTTP_201_CREATED)


class AckView(Endpoint, route="messages/ack/"):
    @extend_schema(operation_id="messages_ack", request=AckIn, responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Acknowledge delivered messages")
    def post(self, request):
        session = acting_session(request)
        return Response(services.messages_ack(session, body(request, AckIn).message_ids))


class ReceiptView(Endpoint, route="messages/<str:message_id>/"):
    @extend_schema(operation_id="message_status", responses=OpenApiTypes.OBJECT, parameters=[SESSION_TOKEN_HEADER],
                   summary="A message's state and timestamps, for its sender or recipient")
    def get(self, request, message_id: str):
        return Response(selectors.message_receipt(selectors.message_for_party(acting_session(request), message_id)))


class ThreadView(Endpoint, route="threads/<str:thread_id>/"):
    @extend_schema(operation_id="thread_get", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER, *query_parameters(ThreadIn, exclude={"thread_id"})],
                   summary="A thread's messages this session sent or received, oldest first, a page at a time")
    def get(self, request, thread_id: str):
        return Response(selectors.thread_read(acting_session(request), query(request, ThreadIn, thread_id=thread_id)))


class SearchView(Endpoint, route="messages/search/"):
    @extend_schema(operation_id="messages_search", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER, *query_parameters(SearchIn)],
                   summary="Full-text search of the messages this session sent or received, ranked, with snippets")
    def get(self, request):
        return Response(messages_searched(acting_session(request), query(request, SearchIn)))


class DeadLetterListView(Endpoint, route="dead-letters/"):
    @extend_schema(operation_id="dead_letters_list", responses=OpenApiTypes.OBJECT, summary="Dead letters (admins)")
    def get(self, request):
        return Response(selectors.dead_letters_listed(request.auth.project, request.auth))


class DeadLetterDetailView(Endpoint, route="dead-letters/<str:message_id>/"):
    @extend_schema(operation_id="dead_letter_get", responses=OpenApiTypes.OBJECT,
                   summary="One dead letter with its payload (admins)")
    def get(self, request, message_id: str):
        message = selectors.dead_letter_get(request.auth.project, message_id, request.auth)
        return Response({**selectors.message_receipt(message), "payload": message.payload})


class DeadLetterReplayView(Endpoint, route="dead-letters/<str:message_id>/replay/"):
    @extend_schema(operation_id="dead_letter_replay", request=None, responses=OpenApiTypes.OBJECT,
                   summary="Queue a dead letter again with a fresh attempt count (admins)")
    def post(self, request, message_id: str):
        accepted = services.dead_letter_replay(request.auth.project, request.auth, message_id)
        return Response(accepted.as_dict())


class DeadLetterPurgeView(Endpoint, route="dead-letters/purge/"):
    @extend_schema(operation_id="dead_letters_purge", request=PurgeIn, responses=OpenApiTypes.OBJECT,
                   summary="Delete dead letters: the ids given, or all (admins)")
    def post(self, request):
        ids = body(request, PurgeIn).message_ids
        return Response({"purged": services.dead_letters_purge(request.auth.project, request.auth, ids)})


def session_long_poll(contract: type[C]):
    """A plain async Django view, not DRF, for a call that may wait (up to 60 s): POST `contract`, acting as
    the X-Session-Token's session; the handler's answer as JSON, a broker error in the SPEC shape.

    Not DRF, as a long poll must not hold one of Django's sync threads while it waits. Its
    database work runs where Django runs a view's (sync_to_async), as every REST call's does. A
    client that goes away (Django cancels the view; the request's ClientLink, put in its scope by
    the router, hears the disconnect too) is claimed nothing, and what was claimed for an answer
    that never went out is put back (routing.receive). Its OpenAPI entry is routing.openapi's,
    from the same contract.
    """
    def wrap(handler: Callable[[Any, AgentSession, C], Awaitable[dict[str, Any]]]):
        @csrf_exempt  # key-authenticated, no cookies: nothing for CSRF to protect
        async def view(request):
            if request.method != "POST":
                return JsonResponse({"error": "method_not_allowed", "message": "Use POST.", "details": {}}, status=405)
            try:
                session = await sync_to_async(lambda: acting_session(request, authenticate_request(request)))()
                answer = await handler(request, session, parsed(contract, json_body(request), what="request body"))
            except BrokerError as exc:
                return broker_error_json(exc)
            return JsonResponse(answer)

        return view

    return wrap


@session_long_poll(ReceiveIn)
async def receive_view(request, session: AgentSession, options: ReceiveIn) -> dict[str, Any]:
    """{max, wait_seconds, auto_ack}: the session's next messages, waiting up to wait_seconds for one."""
    return selectors.messages_received(await messages_receive(
        session, max_messages=options.max, wait_seconds=options.wait_seconds, auto_ack=options.auto_ack,
        claim=sync_to_async(claim_and_beat), link=ClientLink.of(request)))


@session_long_poll(RequestReplyIn)
async def request_reply_view(request, session: AgentSession, asked: RequestReplyIn) -> dict[str, Any]:
    """A send's body and timeout_seconds: sent, then the reply (acked) or a timeout (routing.replies)."""
    return await replies.request_reply(session, asked, send=sync_to_async(message_send),
                                       take=sync_to_async(services.reply_taken), link=ClientLink.of(request))


urlpatterns = [*rest_routes(SendView, BroadcastView),
               path("messages/receive/", receive_view),
               path("messages/request-reply/", request_reply_view),
               *rest_routes(AckView, ThreadView, SearchView, ReceiptView, DeadLetterListView, DeadLetterPurgeView,
                            DeadLetterDetailView, DeadLetterReplayView)]
