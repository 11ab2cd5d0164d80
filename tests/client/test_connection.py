"""Backoff delays between connection attempts."""

from gateway_app.client import Backoff


def test_delays_double_from_initial_up_to_the_cap():
    """Tests that the delay after the n-th failure is initial * factor**(n-1), capped."""
    backoff = Backoff(initial=0.5, maximum=3.0, factor=2.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
