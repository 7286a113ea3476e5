"""The process's one channel-layer listener: each event reaches the local connections it is for, and only those."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers

from routing import hub as hub_module
from routing.hub import RESUMED, TIMER, WOKEN, Hub, Listener, Pace

# Only a guard against a broken hub hanging the run: nothing here waits this long when it works.
TIMEOUT = 5


class Connection(Listener):
    """A listener that records what the hub tells it (as a WebSocket consumer's would be told)."""

    def __init__(self, session_id: uuid.UUID | None = None, project_id: str | None = None,
                 presence: bool = False) -> None:
        # Groups of its own per test.
        super().__init__(session_id or uuid.uuid4(), project_id or f"project-{uuid.uuid4().hex}", Pace(None, None),
                         presence=presence)
        self.events: list[dict[str, Any]] = []
        self.layer_states: list[bool] = []
        self.told = asyncio.Event()

    def heard(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.told.set()
        super().heard(event)

    def layer_changed(self, listening: bool) -> None:
        self.layer_states.append(listening)
        self.told.set()
        super().layer_changed(listening)

    async def until(self, condition) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                self.told.clear()
                await self.told.wait()

    def marks(self) -> list[str]:
        return [event["mark"] for event in self.events]


def message_event(session_id: uuid.UUID, mark: str, **extra: Any) -> dict[str, Any]:
    return {"type": hub_module.MESSAGE_EVENT, "session_id": str(session_id), "mark": mark, **extra}


def presence_event(project_id: str, session_id: uuid.UUID) -> dict[str, Any]:
    return {"type": hub_module.PRESENCE_EVENT, "event": "session_joined", "project_id": project_id,
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
        assert await connection.wait(timeout=TIMEOUT) == RESUMED  # up: look at the database once


async def test_a_message_event_reaches_only_the_connections_of_its_session(hub):
    first_tab = Connection()
    second_tab = Connection(first_tab.session_id)  # one session, two sockets
    other = Connection(project_id=first_tab.project_id)
    await listening(hub, first_tab, second_tab, other)
    hub.dispatch(message_event(first_tab.session_id, "m1"))
    assert first_tab.marks() == second_tab.marks() == ["m1"]
    assert other.events == []
    assert await first_tab.wait(timeout=TIMEOUT) == WOKEN
    assert await other.wait(timeout=0.05) == TIMER


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


async def test_an_event_this_process_publishes_reaches_its_own_listeners_at_once(hub):
    connection = Connection()
    await hub.join(connection)
    hub.publish(hub_module.session_group(connection.session_id), message_event(connection.session_id, "own"))
    await connection.until(lambda: connection.events)
    assert connection.marks() == ["own"]  # handed over at once, when published


async def test_a_layer_failure_is_told_to_every_connection(hub):
    alone, first_tab = Connection(), Connection()
    second_tab = Connection(first_tab.session_id, presence=True)
    await listening(hub, alone, first_tab, second_tab)
    assert hub.listening
    hub._tell_all(False)
    assert not hub.listening
    assert alone.layer_states == first_tab.layer_states == second_tab.layer_states == [True, False]


async def test_a_connection_that_left_is_not_woken_but_another_of_its_session_still_is(hub):
    leaving = Connection(presence=True)
    staying = Connection(leaving.session_id, leaving.project_id, presence=True)
    await hub.join(leaving)
    await hub.join(staying)
    await hub.leave(leaving)
    hub.dispatch(message_event(leaving.session_id, "m1"))
    hub.dispatch(presence_event(leaving.project_id, uuid.uuid4()))
    assert leaving.events == []
    assert [event["type"] for event in staying.events] == [hub_module.MESSAGE_EVENT, hub_module.PRESENCE_EVENT]


async def test_an_event_from_another_process_arrives_through_the_layer_and_our_own_does_not(hub, layer):
    connection = Connection()
    await listening(hub, connection)
    group = hub_module.session_group(connection.session_id)
    await layer.group_send(group, message_event(connection.session_id, "own", origin=hub_module.ORIGIN))
    await layer.group_send(group, message_event(connection.session_id, "theirs"))
    await connection.until(lambda: connection.events)
    # The layer keeps a channel's order: by the time "theirs" arrived, "own" had come and been skipped.
    assert connection.marks() == ["theirs"]


async def test_a_connection_joining_a_listening_hub_gets_its_group_joined_at_once(hub, layer):
    early, late = Connection(), Connection(presence=True)
    await listening(hub, early)
    assert await hub.join(late) is True  # no need to poll: the layer is up and its groups are joined
    await layer.group_send(hub_module.session_group(late.session_id), message_event(late.session_id, "m1"))
    await layer.group_send(hub_module.project_group(late.project_id), presence_event(late.project_id, uuid.uuid4()))
    await late.until(lambda: len(late.events) == 2)
    assert [event["type"] for event in late.events] == [hub_module.MESSAGE_EVENT, hub_module.PRESENCE_EVENT]
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
    await layer.inner.group_send(hub_module.session_group(late.session_id), message_event(late.session_id, "m1"))
    await late.until(lambda: late.events)
    assert late.marks() == ["m1"]


async def test_a_listeners_pace_is_its_fallback_policy(hub):
    polling = Listener(uuid.uuid4(), "p", Pace(recheck=None, poll=0.05))
    patient = Listener(uuid.uuid4(), "p", Pace(recheck=None, poll=None))
    for listener in (polling, patient):
        listener.listening = False  # the layer is down
    # While the layer is down, one polls the database at its pace; the other waits to be woken.
    assert await asyncio.wait_for(polling.wait(), TIMEOUT) == TIMER
    assert await patient.wait(timeout=0.1) == TIMER  # only the caller's own deadline ended it
    patient.layer_changed(True)
    assert await asyncio.wait_for(patient.wait(), TIMEOUT) == RESUMED
    patient.wake()
    assert await asyncio.wait_for(patient.wait(), TIMEOUT) == WOKEN
