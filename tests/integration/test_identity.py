"""AUTH_MODE=jwt beyond the matrix: the body's userId, Idempotency-Keys per caller, rate limits per
sub, and log lines that carry the sub but never the token."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.booking import services
from app.config.identity import IdentitySettings
from app.database.tables import idempotency_keys
from app.operations import dev_keys
from app.web.identity import scope_key
from tests.helpers.booking import book, open_event
from tests.helpers.identity import bearer

NIL_UUID = "00000000-0000-0000-0000-000000000000"


def new_event_id(engine, tickets: int = 5) -> str:
    return str(open_event(engine, tickets).id)


def test_a_booking_without_user_id_is_for_the_token_sub(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    response = jwt_client.post("/api/book", json={"eventId": event_id}, headers=bearer(signing_key.token("alice")))
    assert response.status_code == 201 and response.get_json()["booking"]["userId"] == "alice"


def test_a_cancellation_without_user_id_is_for_the_token_sub(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    book(engine, event_id, "alice")
    response = jwt_client.post("/api/cancel", json={"eventId": event_id}, headers=bearer(signing_key.token("alice")))
    assert response.status_code == 200 and response.get_json()["booking"]["userId"] == "alice"


def test_a_partner_with_bookings_any_must_name_the_user(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    token = signing_key.token("partner", "bookings:any")
    response = jwt_client.post("/api/book", json={"eventId": event_id}, headers=bearer(token))
    assert response.status_code == 400 and list(response.get_json()["errors"]) == ["userId"]
    assert services.get_event(engine, event_id).available_tickets == 5


def test_open_mode_still_requires_user_id(client, engine):
    response = client.post("/api/book", json={"eventId": new_event_id(engine)})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"userId": ["Missing data for required field."]}


def test_one_idempotency_key_from_two_users_is_two_keys(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    key = {"Idempotency-Key": "shared-key"}
    alice = jwt_client.post(
        "/api/book", json={"eventId": event_id}, headers={**bearer(signing_key.token("alice")), **key}
    )
    bob = jwt_client.post("/api/book", json={"eventId": event_id}, headers={**bearer(signing_key.token("bob")), **key})
    assert (alice.status_code, bob.status_code) == (201, 201)
    assert bob.get_json()["booking"]["userId"] == "bob" and "Idempotent-Replayed" not in bob.headers


def test_a_user_retrying_with_the_same_key_gets_the_stored_response(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    headers = {**bearer(signing_key.token("alice")), "Idempotency-Key": "alice-retry"}
    first = jwt_client.post("/api/book", json={"eventId": event_id}, headers=headers)
    retry = jwt_client.post("/api/book", json={"eventId": event_id}, headers=headers)
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.get_data() == first.get_data()


def test_a_key_is_stored_scoped_to_the_sub(jwt_client, engine, signing_key):
    headers = {**bearer(signing_key.token("carol")), "Idempotency-Key": "carol-key"}
    jwt_client.post("/api/book", json={"eventId": new_event_id(engine)}, headers=headers)
    with engine.connect() as conn:
        stored = set(conn.execute(select(idempotency_keys.c.key)).scalars())
    assert scope_key("sub:carol", "carol-key") in stored and "carol-key" not in stored


def test_a_key_without_a_valid_token_replays_nothing(jwt_client, engine, signing_key):
    event_id = new_event_id(engine)
    key = {"Idempotency-Key": "replay-me"}
    jwt_client.post("/api/book", json={"eventId": event_id}, headers={**bearer(signing_key.token("alice")), **key})
    response = jwt_client.post("/api/book", json={"eventId": event_id}, headers=key)
    assert response.status_code == 401 and "Idempotent-Replayed" not in response.headers


def test_rate_limits_count_per_sub(make_app, jwt_settings, signing_key):
    client = make_app(identity=jwt_settings, rate_limit="2 per minute", rate_limit_write="").test_client()
    alice, bob = bearer(signing_key.token("alice")), bearer(signing_key.token("bob"))
    statuses = [
        client.get(f"/api/status/{NIL_UUID}", headers=headers).status_code
        for headers in (alice, alice, alice, bob, bob)
    ]
    assert statuses == [404, 404, 429, 404, 404]


def test_without_a_token_rate_limits_count_per_address(make_app, jwt_settings):
    client = make_app(identity=jwt_settings, rate_limit="2 per minute", rate_limit_write="").test_client()
    assert [client.get(f"/api/status/{NIL_UUID}").status_code for _ in range(3)] == [404, 404, 429]


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_log_lines_carry_the_sub_and_never_the_token_even_on_a_500(jwt_client, signing_key, monkeypatch, capsys):
    def explode(*_args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(services, "get_booking", explode)
    token = signing_key.token("alice")
    capsys.readouterr()
    response = jwt_client.get(
        f"/api/booking-status/{NIL_UUID}/alice", headers={**bearer(token), "X-Request-ID": "sub-500"}
    )
    assert response.status_code == 500
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if '"sub-500"' in line]
    assert {line["event"] for line in lines} == {"unhandled_exception", "request"}
    assert all(line["sub"] == "alice" for line in lines)
    assert token not in output and token.split(".")[2] not in output


def test_a_refused_token_is_not_logged(jwt_client, foreign_key, capsys):
    token = foreign_key.token("mallory")
    capsys.readouterr()
    assert jwt_client.get("/api/users/mallory/bookings", headers=bearer(token)).status_code == 401
    output = capsys.readouterr().out
    assert "token_refused" in output and token.split(".")[2] not in output and '"sub"' not in output


def test_with_no_key_source_the_app_trusts_its_development_key_and_says_so(make_app, scratch, capsys):
    settings = IdentitySettings.from_env({"AUTH_MODE": "jwt"}, "development", scratch)
    client = make_app(identity=settings).test_client()
    assert "auth_development_key" in capsys.readouterr().out
    token = dev_keys.mint(dev_keys.claims("erin"), scratch)
    assert client.get("/api/users/erin/bookings", headers=bearer(token)).status_code == 200


def test_a_403_quotes_at_most_64_characters_of_the_user_id(jwt_client, signing_key):
    other = "m" * 128
    response = jwt_client.get(f"/api/users/{other}/bookings", headers=bearer(signing_key.token("alice")))
    detail = response.get_json()["detail"]
    assert response.status_code == 403 and other[:64] + "\u2026" in detail and other[:65] not in detail
