"""The client package is usable by programs that have no Django configured."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_client_imports_without_django():
    """Tests that importing gateway_app.client in a fresh interpreter never imports django."""
    code = (
        "import sys, gateway_app.client, gateway_app.client.chat; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
