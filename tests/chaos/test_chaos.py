"""The short chaos run of `make test` (`make chaos` runs the long one): faults among retrying clients."""

from __future__ import annotations

import pytest

from tests.chaos.harness import SHORT, Harness


@pytest.fixture(scope="module")
def verdict(restartable_pg, tmp_path_factory):
    harness = Harness(SHORT, restartable_pg.server, restartable_pg.database_url, tmp_path_factory.mktemp("chaos"))
    verdict = harness.execute()
    print(verdict.summary())
    return verdict


@pytest.mark.chaos
def test_chaos_loses_nothing_and_doubles_nothing(verdict):
    assert (verdict.lost, verdict.duplicated) == (0, 0), verdict.summary()


@pytest.mark.chaos
def test_chaos_leaves_every_user_as_their_last_answer_said(verdict):
    assert verdict.run.surprises == []


@pytest.mark.chaos
def test_chaos_ends_with_flask_check_passing(verdict):
    assert verdict.check_passed, verdict.check_output


@pytest.mark.chaos
def test_chaos_injected_its_faults_and_the_clients_felt_them(verdict):
    assert verdict.run.faults == {"worker": 1, "crash": 1, "dispatcher": 1}
    assert verdict.run.tally.retries > 0 and verdict.run.tally.repeats > 0
    assert verdict.run.booked and verdict.run.cancelled  # the load ran through the faults


@pytest.mark.chaos
def test_chaos_delivers_every_committed_change_in_order_and_nothing_else(verdict):
    notifications = verdict.notifications
    assert notifications.deliveries > 0
    assert (notifications.undelivered, notifications.out_of_order, notifications.invented) == ([], [], [])
    assert notifications.rejected == []
