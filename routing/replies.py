"""request_reply: send a request and wait for its answer in one call, without polling.

The request is an ordinary send (routing.sending, with a fresh correlation_id unless the caller
gave one), so it has every guarantee a message has. The answer is an ordinary message too: the
recipient's `send_message(reply_to=<the request's message_id>)` (or reply_to naming the
correlation_id); from any other session such a message is mail, not the reply. The wait is
the long poll's (routing.receive.mail_awaited): the session's mail wake-ups, from any
process, with the client-gone rule, so a reply taken for a client that left is put back in
the inbox. A reply that comes after the timeout is simply mail: the
next receive hands it over, nothing is lost.
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from routing.contracts import RequestReplyIn
from routing.models import Message
from routing.receive import ClientLink, claim_for, mail_awaited
from routing.selectors import message_summary
from routing.sending import Accepted
from sessions_app.models import AgentSession

Sender = Callable[[AgentSession, RequestReplyIn], Awaitable[Accepted]]
ReplyTaker = Callable[[AgentSession, uuid.UUID, list[str]], Awaitable[list[Message]]]


async def request_reply(session: AgentSession, asked: RequestReplyIn, *, send: Sender, take: ReplyTaker,
                        link: ClientLink | None = None) -> dict[str, Any]:
    """Send `asked`, then wait up to its timeout_seconds for the reply; answers it (acked), or `timeout`.

    `send` and `take` are the face's way to the database (the async faces' rounds and threads, or
    Django's), running routing.sending's one send and routing.services.reply_taken.
    """
    link = link or ClientLink()
    if not asked.correlation_id:
        asked = asked.model_copy(update={"correlation_id": uuid.uuid4().hex})
    accepted = await send(session, asked)
    asked_whom, answering = accepted.message.recipient_id, [str(accepted.message.id), asked.correlation_id]
    found = await mail_awaited(session, asked.timeout_seconds, link, lambda: claim_for(
        link, lambda s, _n, _a: take(s, asked_whom, answering), session, 1, True))
    request = accepted.as_dict()
    if found:
        return {"status": "replied", "request": request, "reply": message_summary(found[0])}
    return {"status": "timeout", "request": request, "message_id": request["message_id"],
            "correlation_id": asked.correlation_id,
            "hint": f"No reply within {asked.timeout_seconds:g} s. A later one lands in your inbox "
                    "(receive_messages); get_message_status(message_id) says where the request is."}
