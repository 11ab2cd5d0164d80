# Sourced by scripts/serve and scripts/test: a project venv with requirements.txt installed.
# Re-installs only when requirements.txt changed since the last install. The first run takes
# minutes (Django, daphne, channels-redis...): it prints each step and pip's own lines, so it
# is never silent that long; a run with nothing to install prints nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HERMES_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: first run: creating the virtualenv $VENV" >&2
    "$PYTHON_BIN" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing requirements.txt into $VENV (first run: a few minutes)" >&2
    # pip's lines per package (Collecting, Downloading with its bar, Installing) show progress.
    "$VENV/bin/python" -m pip install --disable-pip-version-check \
        -r "$ROOT/requirements.txt" >&2
    echo "$want" > "$stamp"
    echo "bootstrap: done" >&2
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
