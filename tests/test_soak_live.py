"""The refresh soak (``scripts/soak.py``) at a small size against real daphne."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

SOAK_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


def load_soak():
    # scripts/ is not a package: load the script by its path.
    spec = importlib.util.spec_from_file_location("hermes_soak", SOAK_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refresh_soak_leaves_no_slash_worker_or_detached_session():
    """Tests that 150 refresh cycles leave no slash worker and no detached session behind."""
    soak = load_soak()
    report = soak.run_soak(cycles=150, grace=1, concurrency=4)
    summary = soak.format_report(report)
    assert report["errors"] == 0, summary
    assert report["cycles_done"] == 150, summary
    assert report["slash_workers_max_alive"] >= 1, summary
    assert report["slash_workers_alive_end"] == 0, summary
    assert report["sessions_detached"] == 0, summary
    assert report["sessions_closed"] == 150, summary
    assert not report["server_crashed"], summary
    assert report["processes_left_after_stop"] == [], summary
