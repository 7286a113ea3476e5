"""The process's one channel-layer listener: each event reaches the local connections it is for, and only those."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers

from routing import events
from routing import hub as hub_module
from routing.hub import Hub

# Only a guard against a broken hub hanging the run: nothing here waits this long when it works.
TIMEOUT = 5


@dataclass(eq=False)  # compared and hashed by identity, as the hub's sets of connections need
class Connection:
    """A stand-in for a WebSocket consumer: records what the hub tells it."""

    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    project_id: str = field(default_factory=lambda: f"project-{uuid.uuid4().hex}")  # groups of its own per test
    presence: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    layer_states: list[bool] = field(default_factory=list)
    told: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.told.set()

    def on_layer(self, listening: bool) -> None:
        self.layer_states.append(listening)
        self.told.set()

    async def until(self, condition) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                self.told.clear()
                await self.told.wait()

    def message_ids(self) -> list[list[str]]:
        return [event["message_ids"] for event in self.events]


def message_event(session_id: uuid.UUID, *message_ids: str, **extra: Any) -> dict[str, Any]:
    return {"type": events.MESSAGE_EVENT, "session_id": str(session_id), "message_ids": list(message_ids), **extra}


def presence_event(project_id: str, session_id: uuid.UUID) -> dict[str, Any]:
    return {"type": events.PRESENCE_EVENT, "event": "session_joined", "project_id": project_id,
            "session_id": str(session_id), "name": "newcomer"}


@pytest.fixture
def layer(monkeypatch):
    """A channel layer of the test's own: the Redis one keeps receive state per process, which a
    listener cancelled on an earlier test's event loop leaves behind for the next one."""
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda: layer)
    return layer


@pytest.fixture
async def hub(layer) -> AsyncIterator[Hub]:
    hub = Hub()
    yield hub
    if hub.task is not None:
        hub.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hub.task


async def listening(hub: Hub, *connections: Connection) -> None:
    """Join `connections` and wait until the hub has joined their groups on the layer and told them so."""
    for connection in connections:
        await hub.join(connection)
    for connection in connections:
        await connection.until(lambda c=connection: c.layer_states == [True])


async def test_a_message_event_reaches_only_the_connections_of_its_session(hub):
    first_tab, second_tab = Connection(), Connection()
    second_tab.session_id = first_tab.session_id  # one session, two sockets
    other = Connection(project_id=first_tab.project_id)
    for connection in (first_tab, second_tab, other):
        await hub.join(connection)
    hub.dispatch(message_event(first_tab.session_id, "m1"))
    assert first_tab.message_ids() == second_tab.message_ids() == [["m1"]]
    assert other.events == []


async def test_a_presence_event_reaches_only_connections_of_its_project_that_asked_for_presence(hub):
    watching = Connection(presence=True)
    not_watching = Connection(project_id=watching.project_id)
    elsewhere = Connection(presence=True)
    for connection in (watching, not_watching, elsewhere):
        await hub.join(connection)
    event = presence_event(watching.project_id, uuid.uuid4())
    hub.dispatch(event)
    assert watching.events == [event]
    assert not_watching.events == elsewhere.events == []


async def test_events_this_process_published_are_skipped_when_they_come_back_from_the_layer(hub):
    connection = Connection()
    await hub.join(connection)
    hub._from_layer(message_event(connection.session_id, "own", origin=events.ORIGIN))
    assert connection.events == []  # it was handed over when published
    hub._from_layer(message_event(connection.session_id, "theirs", origin=uuid.uuid4().hex))
    hub._from_layer(message_event(connection.session_id, "an MCP listener's"))
    assert connection.message_ids() == [["theirs"], ["an MCP listener's"]]


async def test_a_layer_failure_is_told_to_every_connection(hub):
    alone, first_tab, second_tab = Connection(), Connection(), Connection(presence=True)
    second_tab.session_id = first_tab.session_id
    await listening(hub, alone, first_tab, second_tab)
    assert hub.listening
    hub._tell_all(False)
    assert not hub.listening
    assert alone.layer_states == first_tab.layer_states == second_tab.layer_states == [True, False]


async def test_a_connection_that_left_is_not_woken_but_another_of_its_session_still_is(hub):
    leaving, staying = Connection(presence=True), Connection(presence=True)
    staying.session_id = leaving.session_id
    staying.project_id = leaving.project_id
    await hub.join(leaving)
    await hub.join(staying)
    await hub.leave(leaving)
    hub.dispatch(message_event(leaving.session_id, "m1"))
    hub.dispatch(presence_event(leaving.project_id, uuid.uuid4()))
    assert leaving.events == []
    assert [event["type"] for event in staying.events] == [events.MESSAGE_EVENT, events.PRESENCE_EVENT]


async def test_an_event_from_another_process_arrives_through_the_layer_and_our_own_does_not(hub, layer):
    connection = Connection()
    await listening(hub, connection)
    group = events.session_group(connection.session_id)
    await layer.group_send(group, message_event(connection.session_id, "own", origin=events.ORIGIN))
    await layer.group_send(group, message_event(connection.session_id, "theirs"))
    await connection.until(lambda: connection.events)
    # The layer keeps a channel's order: by the time "theirs" arrived, "own" had come and been skipped.
    assert connection.message_ids() == [["theirs"]]


async def test_a_connection_joining_a_listening_hub_gets_its_group_joined_at_once(hub, layer):
    early, late = Connection(), Connection(presence=True)
    await listening(hub, early)
    assert await hub.join(late) is True  # no need to poll: the layer is up and its groups are joined
    await layer.group_send(events.session_group(late.session_id), message_event(late.session_id, "m1"))
    await layer.group_send(events.project_group(late.project_id), presence_event(late.project_id, uuid.uuid4()))
    await late.until(lambda: len(late.events) == 2)
    assert [event["type"] for event in late.events] == [events.MESSAGE_EVENT, events.PRESENCE_EVENT]
    assert early.events == []


class GatedLayer:
    """The in-memory layer whose group_add waits until the test lets it go, as a round trip to Redis does."""

    def __init__(self) -> None:
        self.inner = InMemoryChannelLayer()
        self.adding = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def group_add(self, group: str, channel: str) -> None:
        self.adding.set()
        await self.go.wait()
        await self.inner.group_add(group, channel)


async def test_a_connection_joining_while_the_hub_joins_its_groups_is_joined_too(hub, monkeypatch):
    layer = GatedLayer()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda: layer)
    first, late = Connection(), Connection()
    assert await hub.join(first) is False  # the hub starts: its task joins the groups
    await asyncio.wait_for(layer.adding.wait(), TIMEOUT)  # ... and is waiting on the first one
    assert await hub.join(late) is False  # not listening yet: its group is left to the hub's task
    layer.go.set()
    await late.until(lambda: late.layer_states == [True])
    await layer.inner.group_send(events.session_group(late.session_id), message_event(late.session_id, "m1"))
    await late.until(lambda: late.events)
    assert late.message_ids() == [["m1"]]
