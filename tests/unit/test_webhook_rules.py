"""The webhook rules that need no server: the SSRF guard, the retry schedule, Retry-After, signing."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook

from app.notifications.destinations import check_url, public_address
from app.notifications.dispatcher import RetryPolicy
from app.notifications.model import UnsafeDestination, message_key, parse_message_key
from app.notifications.secrets import SecretBox, new_secret
from app.notifications.sender import Sender, retry_after_s, signed_headers
from tests.helpers.api import WEBHOOK_SECRET_KEY


def answers(*addresses):
    return lambda host, port: list(addresses)


def test_a_name_with_any_private_address_is_refused():
    with pytest.raises(UnsafeDestination, match="10.0.0.1"):
        public_address("mixed.example", 443, answers("93.184.216.34", "10.0.0.1"))


def test_a_public_name_gives_the_address_to_connect_to():
    assert public_address("example.com", 443, answers("93.184.216.34", "2606:2800::1")) == "93.184.216.34"


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", "fd00:ec2::254", "100.64.0.1"])
def test_loopback_private_link_local_and_metadata_addresses_are_refused(address):
    with pytest.raises(UnsafeDestination):
        check_url("https://hooks.example/x", allow_private=False, resolver=answers(address))


def test_private_addresses_pass_when_allowed():
    check_url("http://127.0.0.1:9/x", allow_private=True, resolver=answers("127.0.0.1"))


def test_an_unresolvable_host_is_refused():
    with pytest.raises(UnsafeDestination, match="does not resolve"):
        check_url("http://no-such-host.invalid/x", allow_private=False)


def test_dns_rebinding_after_registration_is_caught_at_send_time():
    """The name was public when registered; now it answers 127.0.0.1, and the send never connects."""
    rebinding = iter([["93.184.216.34"], ["127.0.0.1"]])
    resolver = lambda host, port: next(rebinding)  # noqa: E731
    check_url("http://rebind.example/hook", allow_private=False, resolver=resolver)
    sender = Sender(timeout_s=1, allow_private=False, resolver=resolver)

    outcome = sender.send(sender.destination("http://rebind.example/hook"), new_secret(), "msg_1", "{}")

    assert (outcome.status, outcome.delivered) == (None, False)
    assert outcome.error == "refused: rebind.example resolves to 127.0.0.1, which is not a public address"


def test_the_schedule_is_followed_with_jitter_then_given_up():
    policy = RetryPolicy((10, 100))

    assert 8 <= policy.delay_s(1, None) <= 12 and 80 <= policy.delay_s(2, None) <= 120
    assert policy.delay_s(3, None) is None


def test_retry_after_lengthens_the_delay_but_never_shortens_it():
    policy = RetryPolicy((10,))

    assert policy.delay_s(1, 600) == 600 and policy.delay_s(1, 1) >= 8
    assert policy.delay_s(1, 10**9) == 24 * 3600  # a day at most


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)

    assert retry_after_s("120") == 120 and 55 <= retry_after_s(in_a_minute) <= 60
    assert retry_after_s(None) is None and retry_after_s("whenever") is None


def test_a_retry_after_in_an_odd_spelling_is_read_or_ignored_never_raised():
    assert retry_after_s("²") is None  # a digit to str.isdigit, not a number
    assert retry_after_s("Mon, 01 Jan 2035 00:00:00 -0000") > 0  # an HTTP date that does not name its zone


def test_the_signature_verifies_with_standardwebhooks():
    secret, body = new_secret(), '{"id":"msg_1"}'

    assert Webhook(secret).verify(body, signed_headers(secret, "msg_1", body)) == {"id": "msg_1"}


def test_a_sealed_secret_opens_only_with_the_key_and_survives_rotation():
    old = SecretBox((WEBHOOK_SECRET_KEY,))
    sealed = old.seal("whsec_abc")
    rotated = SecretBox(("Y2hhbmdlZC1rZXktY2hhbmdlZC1rZXktY2hhbmdlZDE=", WEBHOOK_SECRET_KEY))

    assert rotated.open(sealed) == "whsec_abc" and b"whsec_abc" not in sealed
    with pytest.raises(ValueError, match="WEBHOOK_SECRET_KEY"):
        SecretBox(())


def test_message_ids_read_back():
    key = message_key(parse_message_key("msg_" + "ab" * 16))

    assert key == "msg_" + "ab" * 16 and parse_message_key("msg_xyz") is None and parse_message_key("abc") is None
