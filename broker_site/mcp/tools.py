"""The broker's MCP tools: each validates its arguments, calls the same service or selector as
its REST twin, and shapes the result. No business rule lives here.

Argument models hold types only, as the REST serializers do; the rules (names, versions,
limits, roles) are the services' so every face enforces the same ones.
"""

from typing import Any, Literal

from asgiref.sync import sync_to_async
from pydantic import Field

from broker_site.mcp.inbox import inbox_uri
from broker_site.mcp.registry import Args, SessionArgs, ToolCall, tool
from projects import selectors as project_selectors
from projects import services as project_services
from protocols import negotiation
from protocols import selectors as protocol_selectors
from protocols import services as protocol_services
from protocols.models import CAPABILITIES
from routing import selectors as message_selectors
from routing import services as message_services
from routing.headers import PRIORITIES
from routing.receive import messages_receive
from sessions_app import selectors as session_selectors
from sessions_app import services as session_services

Priority = Literal[tuple(PRIORITIES)]  # type: ignore[valid-type]
StatusFilter = Literal[tuple(session_selectors.STATUS_FILTERS)]  # type: ignore[valid-type]
Capability = Literal[tuple(CAPABILITIES)]  # type: ignore[valid-type]
SESSION_TOKEN = "Acts as the session connected on this MCP connection, or the one session_token names."


# Sessions

class ConnectArgs(Args):
    name: str | None = Field(None, max_length=100)
    capabilities: dict[str, Any] | None = Field(
        None, description='{"supported_protocols": {"name": ["1.0.0"]}, "supported_features": ["..."]}')
    session_id: str | None = Field(None, max_length=100, description="to resume: the session's id or name")
    session_token: str | None = Field(None, max_length=200, description="to resume: its token")


@tool("connect_session", "Connect as a new session, or resume one with session_id (or name) and session_token. "
      "Later calls on this MCP connection act as it. Keep session_token: shown once.", ConnectArgs)
def connect_session(call: ToolCall, args: ConnectArgs) -> dict[str, Any]:
    connected = session_services.session_connect(call.project, actor=call.caller.actor, **args.model_dump())
    data = connected.as_dict()
    data["bound"] = call.bind(connected.session.pk)
    if data["bound"]:
        data["inbox"] = inbox_uri(connected.session.pk)  # a resource this connection may read and subscribe to
    else:
        data["hint"] = "This connection is stateless: pass session_token to session tools."
    return data


@tool("heartbeat", "Mark the session alive (any session call also counts). " + SESSION_TOKEN, SessionArgs)
def heartbeat(call: ToolCall, args: SessionArgs) -> dict[str, Any]:
    session = session_services.session_heartbeat(call.session(args.session_token))
    return {"session_id": str(session.id), "status": session.status,
            "last_heartbeat_at": session.last_heartbeat_at.isoformat()}


@tool("disconnect_session", "Leave; peers are told, queued mail is kept for a resume. " + SESSION_TOKEN, SessionArgs)
def disconnect_session(call: ToolCall, args: SessionArgs) -> dict[str, Any]:
    session = session_services.session_disconnect(call.session(args.session_token))
    call.unbind(session.pk)
    return {"session_id": str(session.id), "status": session.status}


class ListSessionsArgs(Args):
    status_filter: StatusFilter = "live"
    include_capabilities: bool = True


@tool("list_sessions", "Sessions of this project.", ListSessionsArgs, read_only=True)
def list_sessions(call: ToolCall, args: ListSessionsArgs) -> dict[str, Any]:
    sessions = [session_selectors.session_summary(s, include_capabilities=args.include_capabilities)
                for s in session_selectors.sessions_of(call.project, args.status_filter)[:1000]]
    return {"sessions": sessions, "count": len(sessions), "status_filter": args.status_filter}


# Protocols and negotiation

class RegisterProtocolArgs(Args):
    name: str = Field(max_length=100, description="snake_case")
    version: str = Field(max_length=32, description="semver MAJOR.MINOR.PATCH")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema for payloads")
    capabilities: list[Capability] | None = None
    tags: list[str] | None = Field(None, max_length=20)
    description: str = Field("", max_length=1000)
    shared: bool = False


@tool("register_protocol", "Register a protocol version with the JSON Schema its payloads must match.",
      RegisterProtocolArgs)
def register_protocol(call: ToolCall, args: RegisterProtocolArgs) -> dict[str, Any]:
    protocol = protocol_services.protocol_register(call.project, call.caller, **args.model_dump(by_alias=True))
    return protocol_selectors.protocol_summary(protocol, call.project, include_schema=False)


class DiscoverArgs(Args):
    name: str | None = Field(None, max_length=100)
    version_range: str | None = Field(None, description='e.g. ">=1.0.0,<2.0.0"')
    tags: list[str] | None = Field(None, description="all must match")
    include_shared: bool = False


@tool("discover_protocols", "Find registered protocols (with schemas) by name, version range and tags.",
      DiscoverArgs, read_only=True)
def discover_protocols(call: ToolCall, args: DiscoverArgs) -> dict[str, Any]:
    found = protocol_selectors.protocols_discover(call.project, **args.model_dump())
    body: dict[str, Any] = {"protocols": [protocol_selectors.protocol_summary(p, call.project) for p in found],
                            "count": len(found)}
    if not found:
        body["message"] = "No protocols match these filters."
    return body


class NegotiateArgs(SessionArgs):
    target_session_id: str = Field(max_length=100, description="id or name")
    required_protocols: list[str | dict[str, Any]] | None = Field(
        None, description='names, or {"name": ..., "version_range": ...}')


@tool("negotiate_capabilities", "What this session and the target can exchange: common protocol versions, "
      "features, and why not. " + SESSION_TOKEN, NegotiateArgs, read_only=True)
def negotiate_capabilities(call: ToolCall, args: NegotiateArgs) -> dict[str, Any]:
    source = call.session(args.session_token)
    target = session_selectors.session_get(call.project, args.target_session_id)
    return negotiation.negotiate(source, target, args.required_protocols)


# Messages

class SendArgs(SessionArgs):
    recipient_id: str = Field(max_length=100, description="session id or name")
    payload: dict[str, Any]
    protocol_name: str | None = Field(None, max_length=100)
    protocol_version: str | None = Field(None, max_length=32)
    priority: Priority = "normal"
    ttl: int | None = Field(None, description="seconds")
    correlation_id: str = Field("", max_length=128)
    reply_to: str = Field("", max_length=100)


@tool("send_message", "Send one message; answered once it is stored (queued for the recipient). " + SESSION_TOKEN,
      SendArgs)
def send_message(call: ToolCall, args: SendArgs) -> dict[str, Any]:
    data = args.model_dump(exclude={"session_token", "recipient_id"})
    sender = call.session(args.session_token)
    return message_services.message_send(sender, recipient=args.recipient_id, **data).as_dict()


class BroadcastArgs(SessionArgs):
    payload: dict[str, Any]
    protocol_name: str | None = Field(None, max_length=100)
    protocol_version: str | None = Field(None, max_length=32)
    capability_filter: dict[str, bool] | None = Field(None, description="feature: must have (true) / must not")
    priority: Priority = "normal"


@tool("broadcast_message", "Send to every other live session of the project; says who got it and why not. "
      + SESSION_TOKEN, BroadcastArgs)
def broadcast_message(call: ToolCall, args: BroadcastArgs) -> dict[str, Any]:
    sender = call.session(args.session_token)
    return message_services.message_broadcast(sender, **args.model_dump(exclude={"session_token"}))


class ReceiveArgs(SessionArgs):
    max: int = Field(10, ge=1, le=100)
    wait_seconds: float = Field(0, ge=0, le=60, description="wait this long for mail if none is queued")
    auto_ack: bool = False


@tool("receive_messages", "Take the next messages, waiting up to wait_seconds for one. Ack them after handling. "
      + SESSION_TOKEN, ReceiveArgs)
async def receive_messages(call: ToolCall, args: ReceiveArgs) -> dict[str, Any]:
    session = await sync_to_async(call.session)(args.session_token)
    await sync_to_async(session_services.session_heartbeat)(session)
    messages = await messages_receive(session, max_messages=args.max, wait_seconds=args.wait_seconds,
                                      auto_ack=args.auto_ack)
    return {"messages": [message_selectors.message_summary(m) for m in messages], "count": len(messages)}


class AckArgs(SessionArgs):
    message_ids: list[str] = Field(min_length=1, max_length=1000)


@tool("ack_messages", "Acknowledge received messages so they are not delivered again. " + SESSION_TOKEN, AckArgs)
def ack_messages(call: ToolCall, args: AckArgs) -> dict[str, Any]:
    session = call.session(args.session_token)
    result = message_services.messages_ack(session, args.message_ids)
    session_services.session_heartbeat(session)
    return result


class MessageArgs(SessionArgs):
    message_id: str = Field(max_length=40)


@tool("get_message_status", "A message's state and timestamps, for its sender or recipient. " + SESSION_TOKEN,
      MessageArgs, read_only=True)
def get_message_status(call: ToolCall, args: MessageArgs) -> dict[str, Any]:
    message = message_selectors.message_for_party(call.session(args.session_token), args.message_id)
    return message_selectors.message_receipt(message)


# Dead letters (project admins)

@tool("list_dead_letters", "Messages that could not be delivered, newest first (admin keys).", Args, read_only=True)
def list_dead_letters(call: ToolCall, args: Args) -> dict[str, Any]:
    letters = [message_selectors.message_receipt(m)
               for m in message_selectors.dead_letters_of(call.project, call.caller)]
    return {"dead_letters": letters, "count": len(letters)}


class ReplayArgs(Args):
    message_id: str = Field(max_length=40)


@tool("replay_dead_letter", "Queue a dead letter again with a fresh attempt count (admin keys).", ReplayArgs)
def replay_dead_letter(call: ToolCall, args: ReplayArgs) -> dict[str, Any]:
    return message_services.dead_letter_replay(call.project, call.caller, args.message_id).as_dict()


# Projects (roles are the services' to check)

class CreateProjectArgs(Args):
    project_id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    description: str = Field("", max_length=500)
    discoverable: bool = False
    config: dict[str, Any] | None = Field(None, description="limits such as max_sessions, max_queue_size")


@tool("create_project", "Create a project (operator keys). Returns its first admin key, shown once.",
      CreateProjectArgs)
def create_project(call: ToolCall, args: CreateProjectArgs) -> dict[str, Any]:
    project, key, raw = project_services.project_create(**args.model_dump(), caller=call.caller)
    body = project_selectors.project_summary(project, caller=call.caller, include_config=True)
    body["admin_key"] = {**project_selectors.api_key_summary(key), "api_key": raw,
                         "notice": "This is the only time the key is shown. Store it now."}
    return body


class ListProjectsArgs(Args):
    name_filter: str = Field("", max_length=100)
    include_inactive: bool = False
    include_stats: bool = False


@tool("list_projects", "Projects this key can see: its own and discoverable ones (operators: all). Never keys.",
      ListProjectsArgs, read_only=True)
def list_projects(call: ToolCall, args: ListProjectsArgs) -> dict[str, Any]:
    projects = project_selectors.projects_visible(call.caller, name_filter=args.name_filter,
                                                  include_inactive=args.include_inactive)
    items = [project_selectors.project_summary(p, caller=call.caller, include_stats=args.include_stats)
             for p in projects]
    return {"projects": items, "count": len(items)}


class ProjectInfoArgs(Args):
    project_id: str = Field(max_length=64)
    include_config: bool = False
    include_permissions: bool = False


@tool("get_project_info", "One project's details and stats.", ProjectInfoArgs, read_only=True)
def get_project_info(call: ToolCall, args: ProjectInfoArgs) -> dict[str, Any]:
    project = project_selectors.project_for(call.caller, args.project_id, allow_discoverable=True)
    return project_selectors.project_summary(project, caller=call.caller, include_config=args.include_config,
                                             include_stats=True, include_permissions=args.include_permissions)


class RotateKeysArgs(Args):
    project_id: str = Field(max_length=64)
    key_id: str | None = Field(None, max_length=32, description="default: the calling key")
    grace_period_seconds: int = Field(300, ge=0, le=604_800, description="how long the old key still works")


@tool("rotate_project_keys", "Replace a key (admin keys); the new key is shown once, the old one works for the "
      "grace period.", RotateKeysArgs)
def rotate_project_keys(call: ToolCall, args: RotateKeysArgs) -> dict[str, Any]:
    project = project_selectors.project_for(call.caller, args.project_id)
    old = project_selectors.api_key_get(project, args.key_id or call.caller.key.key_id)
    key, raw = project_services.api_key_rotate(old, grace_period_seconds=args.grace_period_seconds,
                                               caller=call.caller)
    return {**project_selectors.api_key_summary(key), "api_key": raw,
            "notice": "This is the only time the key is shown. Store it now."}


class ProjectArgs(Args):
    project_id: str = Field(max_length=64)


@tool("deactivate_project", "Deactivate a project (operator keys): its sessions end, its history stays.",
      ProjectArgs)
def deactivate_project(call: ToolCall, args: ProjectArgs) -> dict[str, Any]:
    project = project_selectors.project_for(call.caller, args.project_id)
    project = project_services.project_deactivate(project, caller=call.caller)
    return project_selectors.project_summary(project, caller=call.caller)
