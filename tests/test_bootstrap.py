"""scripts/bootstrap.sh: a first run says what it installs; a run with nothing to do is quiet."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bootstrap(root: Path) -> subprocess.CompletedProcess:
    """Source a copy of bootstrap.sh in ``root`` (its own .venv), as scripts/serve does."""
    return subprocess.run(
        ["bash", "-c", f"source {root / 'scripts' / 'bootstrap.sh'}"],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_first_run_shows_each_step_and_pips_progress_then_stays_quiet(tmp_path):
    """Tests that the first run prints a line per step and pip's own output (not silent
    for minutes), and that a second run with nothing to install prints nothing."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "bootstrap.sh", tmp_path / "scripts" / "bootstrap.sh")
    # Already in any new venv: pip reports it without touching the network.
    (tmp_path / "requirements.txt").write_text("pip\n")

    first = bootstrap(tmp_path)
    shown = first.stdout + first.stderr
    assert "bootstrap: first run: creating the virtualenv" in shown
    assert "bootstrap: installing requirements.txt" in shown
    assert "Requirement already satisfied: pip" in shown  # pip's own lines come through
    assert "bootstrap: done" in shown

    again = bootstrap(tmp_path)
    assert again.stdout + again.stderr == ""
