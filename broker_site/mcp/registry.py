"""How a tool is declared and run: an operation's contract as its arguments, a thin handler, one error path.

A tool's arguments are its operation's contract (broker_site.contracts; the same model the
REST body and the WebSocket frame use), plus `session_token` for tools that act as a session.
They are validated here, so a mistake comes back as a `validation_error` in the SPEC shape
rather than the SDK's text. The SDK still sees an ordinary `Tool`: its published inputSchema
is the model's schema, and its own argument model passes the raw arguments through untouched.

Handlers run on the process's database threads (broker_site.workers), as every async face's
database work does: long-lived threads that keep their connections.
"""

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict

from broker_site import counters
from broker_site.contracts import Contract, parsed
from broker_site.errors import Unauthorized
from broker_site.mcp.auth import caller_of, caller_of_request, mcp_session_id_of, session_token_of_request
from broker_site.mcp.binding import bindings
from broker_site.mcp.errors import tool_error, tool_result
from broker_site.workers import db
from projects.auth import Caller
from projects.models import ApiKey
from routing.lifecycle import session_acting
from routing.receive import ClientLink
from sessions_app.models import AgentSession
from sessions_app.selectors import NoActingSession


class NoArgs(Contract):
    """A tool that takes nothing."""


class SessionArgs(Contract):
    session_token: str | None = None


class _RawArguments(ArgModelBase):
    """The SDK-side argument model: hands every argument on, for the contract to judge."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


@dataclass
class ToolCall:
    """What a handler gets besides its arguments: who calls, and on which MCP connection."""

    tool: str
    caller: Caller
    mcp_session_id: str | None
    link: ClientLink  # the HTTP request's tie to its client (a long poll stops when it goes)
    header_token: str | None = None  # X-Session-Token, configured once in the client

    @property
    def project(self):
        return self.caller.project

    def session(self, session_token: str | None, **acting: bool) -> AgentSession:
        """The broker session this call acts as (routing.lifecycle.session_acting): the explicit
        token argument, else the session connect_session bound this connection to, else the X-Session-Token
        header (the identity configured in the client, resumed by the call if it was disconnected)."""
        bound = bindings.lookup(self.mcp_session_id, self.project.pk) if self.mcp_session_id else None
        try:
            return session_acting(self.project, token=session_token, bound_to=bound,
                                  configured_token=self.header_token, **acting)
        except NoActingSession:
            raise Unauthorized(f"{self.tool} acts as a session, and none is connected here: call connect_session "
                               "first, or pass the session_token it returned.", next_step="connect_session") from None

    def bind(self, session_pk: uuid.UUID) -> bool:
        if not self.mcp_session_id:
            return False
        bindings.bind(self.mcp_session_id, self.project.pk, session_pk)
        return True

    def unbind(self, session_pk: uuid.UUID) -> None:
        if self.mcp_session_id:
            bindings.unbind(self.mcp_session_id, session_pk)


Handler = Callable[[ToolCall, Any], Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    handler: Handler
    read_only: bool = False
    role: str = ApiKey.Role.AGENT


registry: list[ToolSpec] = []


def tool(name: str, description: str, args: type[BaseModel], *, read_only: bool = False,
         role: str = ApiKey.Role.AGENT) -> Callable[[Handler], Handler]:
    """Register a tool. `role`: the least a key needs for the tool to be of any use to it; keys below it do not
    see it in tools/list (tools_for_the_caller). The service still decides every call: listing is not a permission."""

    def register(handler: Handler) -> Handler:
        registry.append(ToolSpec(name, description, args, handler, read_only, role))
        return handler

    return register


async def tools_for_the_caller(ctx, call_next):
    """SDK middleware: tools/list shows each key only the tools its role may call, so an agent's context is not
    spent on project, key, link and dead-letter administration."""
    result = await call_next(ctx)
    if ctx.method != "tools/list" or not isinstance(result, dict):
        return result
    caller = caller_of_request(ctx.request)
    shown = {spec.name for spec in registry if caller.has_role(spec.role)}
    return {**result, "tools": [t for t in result.get("tools", []) if t.get("name") in shown]}


def _compact(schema: Any) -> Any:
    """Drop what costs an agent's context and says nothing: titles, `null` arms of optionals, and defaults that
    are what leaving the argument out means anyway (null, false, an empty string)."""
    if isinstance(schema, list):
        return [_compact(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and (value is None or value is False or value == ""):
            continue
        if key == "properties":
            out[key] = {name: _compact(prop) for name, prop in value.items()}
            continue
        out[key] = _compact(value)
    arms = out.get("anyOf")
    if isinstance(arms, list):
        rest = [arm for arm in arms if arm != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(arms):
            del out["anyOf"]
            out = {**rest[0], **out}
    return out


def input_schema(args: type[BaseModel]) -> dict[str, Any]:
    schema = _compact(args.model_json_schema())
    schema.pop("description", None)  # the model's docstring; the tool has its own description
    return schema


async def run_handler(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a handler (or an inbox read): an async one here, a sync one on the database threads."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    return await db(fn)(*args)


async def run_tool(spec: ToolSpec, arguments: dict[str, Any], ctx: Context) -> CallToolResult:
    caller = None
    try:
        args = parsed(spec.args, arguments, what=f"arguments to {spec.name}")
        request = ctx.request_context.request
        caller = caller_of(ctx)
        call = ToolCall(spec.name, caller, mcp_session_id_of(ctx), ClientLink.of(request),
                        session_token_of_request(request))
        result = await run_handler(spec.handler, call, args)
    except Exception as exc:
        answer = tool_error(exc, spec.name)
        counters.request_counted("mcp", caller.project.pk if caller else None, answer.structured_content["error"])
        return answer
    counters.request_counted("mcp", caller.project.pk, "ok")
    return tool_result(result)


def sdk_tool(spec: ToolSpec) -> Tool:
    async def call(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        return await run_tool(spec, arguments, ctx)

    return Tool(
        fn=call, name=spec.name, description=spec.description, parameters=input_schema(spec.args),
        fn_metadata=FuncMetadata(arg_model=_RawArguments), is_async=True, context_kwarg="ctx",
        annotations=ToolAnnotations(read_only_hint=True) if spec.read_only else None,
    )
