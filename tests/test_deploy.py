"""The deployment launcher's restart policy (scripts/deploy.py), without starting anything."""

import importlib.util

from tests.support.servers import REPO


def load_deploy():
    spec = importlib.util.spec_from_file_location("deploy_script", REPO / "scripts" / "deploy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = load_deploy()


def test_a_worker_dying_at_once_is_restarted_after_a_doubling_pause():
    """Tests that each quick death in a row doubles the pause before the restart."""
    backoff = deploy.Backoff(initial=0.5, cap=30, reset_after=60)
    assert [backoff.next(uptime=1) for _ in range(4)] == [0.5, 1, 2, 4]


def test_the_restart_pause_is_capped():
    """Tests that a worker that keeps dying is retried at most every ``cap`` seconds."""
    backoff = deploy.Backoff(initial=0.5, cap=3, reset_after=60)
    assert [backoff.next(uptime=0) for _ in range(5)] == [0.5, 1, 2, 3, 3]


def test_a_worker_that_stayed_up_starts_again_from_the_first_pause():
    """Tests that a death after ``reset_after`` seconds up resets the pause."""
    backoff = deploy.Backoff(initial=0.5, cap=30, reset_after=60)
    for _ in range(3):
        backoff.next(uptime=1)
    assert backoff.next(uptime=60) == 0.5
    assert backoff.next(uptime=1) == 1
