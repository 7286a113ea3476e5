"""Keys and session tokens never reach a log line, whatever happens."""

import logging


def test_keys_and_tokens_are_never_logged(alpha, caplog):
    with caplog.at_level(logging.DEBUG):
        created = alpha.admin().post("/api/v1/projects/alpha/keys/", {"role": "agent"}, format="json").json()
        new_key = created["api_key"]
        connected = alpha.client().post("/api/v1/sessions/", {"name": "w"}, format="json").json()
        token = connected["session_token"]
        alpha.client().post("/api/v1/sessions/", {"name": "w", "session_token": token}, format="json")
        bad = alpha.agent_key[:-4] + "AAAA"
        alpha.client(bad).get("/api/v1/sessions/")
        alpha.client(HTTP_X_SESSION_TOKEN="wrong").post("/api/v1/sessions/me/heartbeat/")
    everything = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert caplog.records, "expected the broker to log these events"
    for key in (new_key, bad, alpha.agent_key, alpha.admin_key):
        assert key.split("_", 2)[-1] not in everything  # the secret part of {project}_{key_id}_{secret}
    # A session token is URL-safe base64 and may hold underscores itself: look for all of it.
    assert token not in everything
