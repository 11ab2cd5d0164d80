"""The benchmark scripts still start: they import the gateway and tests.support, which move."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    path.name
    for path in (REPO / "benchmarks").glob("*.py")
    if path.name not in ("__init__.py", "load.py", "report.py")
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_benchmark_script_starts(script):
    """Tests that ``python benchmarks/<script> --help`` imports everything and exits 0."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
