"""A namespace that refused a create for being deleted gets no more creates for a while."""

from __future__ import annotations

from coffee_operator.terminating import MEMORY_SECONDS, TerminatingNamespaces


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NOW = 1_800_000_000.25  # 2027-01-15T08:00:00.25Z
BEFORE = "2027-01-15T07:59:00Z"  # a CoffeeServer created before the refusal


def test_creates_are_skipped_only_in_the_refusing_namespace() -> None:
    clock = Clock(NOW)
    gone = TerminatingNamespaces(clock)
    assert not gone.skip_creates("cafe", BEFORE)
    gone.mark("cafe")
    assert gone.skip_creates("cafe", BEFORE)
    assert gone.skip_creates("cafe", None)
    assert not gone.skip_creates("bar", BEFORE)


def test_the_mark_expires_so_a_long_deletion_is_asked_again() -> None:
    clock = Clock(NOW)
    gone = TerminatingNamespaces(clock)
    gone.mark("cafe")
    clock.now += MEMORY_SECONDS - 1
    assert gone.skip_creates("cafe", BEFORE)
    clock.now += 2
    assert not gone.skip_creates("cafe", BEFORE)
    assert not gone.skip_creates("cafe", BEFORE)  # forgotten until the next refusal


def test_a_coffee_server_created_after_the_refusal_means_a_new_live_namespace() -> None:
    clock = Clock(NOW)
    gone = TerminatingNamespaces(clock)
    gone.mark("cafe")
    # Same second as the refusal: not provably later (timestamps have whole seconds).
    assert gone.skip_creates("cafe", "2027-01-15T08:00:00Z")
    assert not gone.skip_creates("cafe", "2027-01-15T08:00:01Z")  # re-created namespace
    assert not gone.skip_creates("cafe", BEFORE)  # and the mark is gone with it
