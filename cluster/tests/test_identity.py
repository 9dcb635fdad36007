"""AUTH_MODE=jwt through the balancer: every instance trusts the cluster's JWKS server and no other key."""

from __future__ import annotations

import pytest

from app.operations import dev_keys
from cluster.client import Api


@pytest.fixture(scope="module")
def event_id(admin):
    return admin.initialize(5)


@pytest.fixture(scope="module", autouse=True)
def jwt_mode(cluster):
    if cluster.jwks is None:
        pytest.skip("the cluster runs with AUTH_MODE=open")


def test_a_users_own_token_books_on_every_instance(cluster, addresses, event_id):
    api = Api(cluster.base_url, addresses.next(), tokens=cluster.jwks.token)
    replies = [api.book(event_id, f"jwt-user-{n}") for n in range(3)]
    assert [reply.status for reply in replies] == [201] * 3
    assert len({reply.headers["x-served-by"] for reply in replies}) == 3, "round robin: every instance verified one"


def test_a_request_without_a_token_is_a_401(cluster, addresses, event_id):
    reply = Api(cluster.base_url, addresses.next()).book(event_id, "anonymous")
    assert reply.status == 401 and reply.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_another_users_token_is_a_403(cluster, addresses, event_id):
    api = Api(cluster.base_url, addresses.next(), tokens=lambda _user: cluster.jwks.token("mallory"))
    assert api.book(event_id, "victim").status == 403


def test_a_token_the_cluster_did_not_sign_is_a_401(cluster, addresses, event_id, tmp_path):
    foreign = dev_keys.mint(dev_keys.claims("intruder"), tmp_path)  # another development key, same kid scheme
    api = Api(cluster.base_url, addresses.next(), tokens=lambda _user: foreign)
    assert api.book(event_id, "intruder").status == 401
