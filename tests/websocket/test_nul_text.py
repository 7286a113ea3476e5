"""Text holding NUL (U+0000) is a validation_error on every face: PostgreSQL stores it neither in text nor in jsonb.

Found by bench/fuzz.py on PostgreSQL: a broadcast whose payload held "\\u0000" and a project list
filtered by a name holding %00 were 500s there (and accepted on SQLite); so was any path naming one.
"""

NUL_PAYLOAD = {"note": "a\u0000b"}


async def test_a_frame_holding_nul_is_refused_and_the_socket_stays(live_broker):
    async with live_broker.connect() as client:
        for frame in ({"type": "send", "recipient_id": client.session_id, "payload": NUL_PAYLOAD},
                      {"type": "broadcast", "payload": {"k\u0000": 1}}):
            refused = await client.request(frame)
            assert (refused["error"], refused["details"]["constraint"]) == ("validation_error", "no_nul"), refused
        assert (await client.request({"type": "heartbeat"}))["type"] == "result"


def test_rest_bodies_and_queries_holding_nul_are_refused(live_broker):
    with live_broker.rest() as rest:
        connected = rest.post("/api/v1/sessions/", json={"name": "nul-sender"})
        assert connected.status_code == 201, connected.text
        named = rest.post("/api/v1/sessions/", json={"name": "nul\u0000name"})
        assert (named.status_code, named.json()["details"]["constraint"]) == (400, "no_nul"), named.text
        listed = rest.get("/api/v1/projects/", params={"name_filter": "a\u0000"})
        assert (listed.status_code, listed.json()["error"]) == (400, "validation_error"), listed.text
        for path in ("/api/v1/projects/a%00b/", "/api/v1/protocols/a%00/1.0.0/", "/api/v1/sessions/a%00/",
                     "/admin/projects/project/a%00/change/"):
            refused = rest.get(path)
            assert (refused.status_code, refused.json()["details"]["constraint"]) == (400, "no_nul"), (path, refused.text)
    with live_broker.rest(session_token=connected.json()["session_token"]) as rest:
        for path in ("/api/v1/messages/", "/api/v1/messages/broadcast/"):
            refused = rest.post(path, json={"recipient_id": "nul-sender", "payload": NUL_PAYLOAD})
            assert (refused.status_code, refused.json()["details"]["constraint"]) == (400, "no_nul"), refused.text
        sent = rest.post("/api/v1/messages/", json={"recipient_id": "nul-sender", "payload": {"note": "a\\u0000b"}})
        assert sent.status_code == 201, sent.text  # an escaped backslash is plain text


async def test_an_integer_past_64_bits_arrives_exactly_as_sent(live_broker):
    # The frames' codec (orjson) cannot hold it; it must fall back, not round it to a float or refuse it.
    payload = {"n": 2**70 + 1, "neg": -(2**64)}
    async with live_broker.connect() as client:
        sent = await client.request({"type": "send", "recipient_id": client.session_id, "payload": payload})
        assert sent["type"] == "result", sent
        [pushed] = await client.messages(1)
        assert pushed["payload"] == payload
    with live_broker.rest() as rest:
        reader = rest.post("/api/v1/sessions/", json={"name": "big-ints"}).json()
    with live_broker.rest(session_token=reader["session_token"]) as rest:
        assert rest.post("/api/v1/messages/", json={"recipient_id": "big-ints", "payload": payload}).status_code == 201
        [received] = rest.post("/api/v1/messages/receive/", json={"wait_seconds": 0}).json()["messages"]
        assert received["payload"] == payload
