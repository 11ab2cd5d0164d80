"""
Gateway settings: ``settings.HERMES_GATEWAY`` over documented defaults, read through one
cached accessor whose cache is cleared when a test overrides settings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

#: Every option, with its default. The README's settings table mirrors this dict.
DEFAULTS: dict[str, Any] = {
    # Lifecycle (PROTOCOL.md "Lifecycle settings").
    "REAP_GRACE_S": 20.0,  # detached session waits this long before its reap; 0 disables
    "SESSION_TTL_S": 21600.0,  # idle sessions older than this are reaped; 0 disables
    "MAX_LIVE_SESSIONS": 256,  # per worker; LRU idle detached session evicted beyond it
    "SWEEP_INTERVAL_S": 5.0,  # periodic sweep backing every one-shot reap timer
    # Beside other workers: how often rows left by a worker that died are marked detached.
    "SETTLE_INTERVAL_S": 60.0,
    # A question unanswered this long with nobody attached is answered for the user (approval
    # "deny", clarify ""), so the session can finish its turn and be reaped; 0 disables.
    "PENDING_QUESTION_TIMEOUT_S": 3600.0,
    # Agent turns.
    "AGENT": "echo",  # "echo" (offline, default) or "openai"
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "OPENAI_API_KEY": "",
    "MODEL": "gpt-4o-mini",
    "AGENT_TIMEOUT_S": 120.0,  # an OpenAI-compatible request that stalls this long fails
    "DELTA_COALESCE_MS": 30.0,  # message.delta texts within this window go out as one frame
    "REPLAY_BUFFER_EVENTS": 1000,  # per session, for session.resume with last_seq
    "REPLAY_BUFFER_BYTES": 1024 * 1024,
    # Newest transcript messages a live session keeps in memory and gives the agent.
    "HISTORY_LIMIT": 200,
    # Slash worker subprocess.
    "SLASH_TIMEOUT_S": 10.0,  # one slash command
    "SLASH_CLOSE_TIMEOUT_S": 2.0,  # EOF -> terminate -> kill, each step waits this long
    "SLASH_OUTPUT_LIMIT": 64 * 1024,  # characters of command output returned
    "TERMINAL_TIMEOUT_S": 30.0,  # the terminal tool's command timeout
    "TERMINAL_OUTPUT_LIMIT": 16 * 1024,
    # "bwrap" (bubblewrap sandbox; the tool is off if it cannot run) or "none" (no sandbox).
    "TERMINAL_SANDBOX": "bwrap",
    "TERMINAL_NETWORK": False,  # True shares the host's network with sandboxed commands
    # rlimits of a command. Processes count per real uid: all sandboxes running at once share
    # them when the gateway runs as root (bwrap runs as uid 65534), else with the gateway's own.
    "TERMINAL_MAX_PROCESSES": 256,
    "TERMINAL_MAX_MEMORY_BYTES": 1024**3,  # address space of each process
    "TERMINAL_MAX_FILE_BYTES": 64 * 1024**2,  # largest file a command may write
    # Per-session scratch directories (cwd and HOME) live under it; "" is the system temp dir.
    "TERMINAL_SCRATCH_DIR": "",
    # Limits (hostile input).
    "MAX_FRAME_BYTES": 1024 * 1024,  # larger frames close the socket with 1009
    "MAX_MESSAGE_BYTES": 256 * 1024,  # one JSON-RPC line; larger gets 4013
    "MAX_LINES_PER_FRAME": 100,
    "RATE_LIMIT_PER_S": 200.0,  # per connection, token bucket refill rate
    "RATE_LIMIT_BURST": 400,
    "MAX_SESSIONS_PER_USER": 64,  # live sessions
    "MAX_CONNECTIONS_PER_USER": 32,
    "MAX_PROMPT_CHARS": 32000,
    "SEND_QUEUE_LIMIT": 2000,  # frames queued for a client that stopped reading (4008)
    "SEND_QUEUE_BYTES": 8 * 1024 * 1024,  # bytes queued for such a client (4008)
    # Open token and cookie sockets re-check their credential this often (the delay of a
    # revocation or ended login no channel-layer message announced).
    "TOKEN_RECHECK_S": 60.0,
    # Presentation.
    "SKIN": {"name": "default", "accent": "#5b8def", "banner": "Hermes gateway"},
    # Multi-worker.
    "WORKER_NAME": "",  # shown in the admin; defaults to host:pid
    "HEARTBEAT_S": 1.0,  # hosts refresh their liveness key this often
    # Group memberships are renewed this often; must stay below the layer's group_expiry.
    "GROUP_REFRESH_S": 3600.0,
    "HOST_DEAD_AFTER_S": 3.0,  # a host silent this long is dead; its sessions are taken over
    "FORWARD_TIMEOUT_S": 5.0,  # a forwarded call unanswered this long fails (-32603)
    # Database writes are gathered this long into one batch (merged per row, bulk inserts).
    "STORE_BATCH_MS": 50.0,
    # One worker: session.list answers from memory (with Redis: from the database each time);
    # rows changed by other processes show within this.
    "LIST_CACHE_S": 5.0,
}


@lru_cache(maxsize=1)
def gateway_settings() -> dict[str, Any]:
    """Return the effective gateway options (defaults overlaid by ``HERMES_GATEWAY``)."""
    merged = dict(DEFAULTS)
    merged.update(getattr(settings, "HERMES_GATEWAY", {}) or {})
    return merged


def setting(name: str) -> Any:
    """Return one gateway option by its UPPERCASE name."""
    return gateway_settings()[name]


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == "HERMES_GATEWAY":
        gateway_settings.cache_clear()
