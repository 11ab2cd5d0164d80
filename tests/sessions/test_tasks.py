"""The host's background task helpers: TaskSet and the Periodic loop."""

import asyncio
import logging

from gateway_app.sessions.tasks import Periodic, TaskSet


async def test_a_periodic_loop_runs_its_action_until_stopped():
    """Tests that a Periodic runs its action again and again, and not once stopped."""
    runs = []
    enough = asyncio.Event()

    async def action():
        runs.append(1)
        if len(runs) == 3:
            enough.set()

    periodic = Periodic(action, lambda: 0.001, failure="x failed")
    periodic.start()
    await enough.wait()
    await periodic.stop()
    assert periodic.task is None
    count = len(runs)
    await asyncio.sleep(0.01)
    assert len(runs) == count


async def test_a_failing_run_is_logged_reported_and_the_loop_goes_on(caplog):
    """Tests that an action raising is logged with the loop's failure text, passed to
    on_failure, and the next run still happens."""
    failures = []
    again = asyncio.Event()
    runs = []

    async def action():
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        again.set()

    log = logging.getLogger("tests.periodic")
    periodic = Periodic(
        action, lambda: 0.001, failure="beating failed", log=log, on_failure=failures.append
    )
    with caplog.at_level(logging.WARNING, "tests.periodic"):
        periodic.start()
        await again.wait()
        await periodic.stop()
    assert [type(exc) for exc in failures] == [RuntimeError]
    assert "beating failed: RuntimeError('boom')" in caplog.text


async def test_the_interval_is_read_before_each_wait():
    """Tests that a changed interval (a setting) applies from the next wait on."""
    intervals = iter([0.001, 0.002, 0.003])
    asked = []
    done = asyncio.Event()

    def interval():
        value = next(intervals, 0.001)
        asked.append(value)
        return value

    async def action():
        if len(asked) >= 3:
            done.set()

    periodic = Periodic(action, interval, failure="x failed")
    periodic.start()
    await done.wait()
    await periodic.stop()
    assert asked[:3] == [0.001, 0.002, 0.003]


async def test_a_task_set_joins_what_it_spawned_and_logs_a_failure(caplog):
    """Tests that join() waits for every spawned task and a failing one is logged."""
    tasks = TaskSet()

    async def fail():
        raise ValueError("bad")

    tasks.spawn(asyncio.sleep(0.001))
    tasks.spawn(fail())
    with caplog.at_level(logging.ERROR, "gateway_app.sessions.tasks"):
        await tasks.join()
    assert len(tasks) == 0
    assert "failed" in caplog.text
