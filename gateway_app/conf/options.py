"""
Every gateway option, defined once: name, default, validation kind (its type and checks),
environment variable, and the documentation the README's settings table is rendered from
(``python -m gateway_app.conf --write README.md``). No Django imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import kinds
from .kinds import Kind

KiB, MiB, GiB = 1024, 1024**2, 1024**3


@dataclass(frozen=True, eq=False)
class Option:
    """One entry of ``settings.HERMES_GATEWAY``. ``doc`` is Markdown (a README table cell);
    ``shown`` replaces the default in that table when the value alone does not say it."""

    name: str
    default: Any
    kind: Kind
    doc: str
    env: str = ""
    shown: str = ""

    @property
    def type(self) -> type:
        return self.kind.type


OPTIONS: tuple[Option, ...] = (
    # Lifecycle (PROTOCOL.md "Lifecycle settings").
    Option(
        "REAP_GRACE_S",
        20.0,
        kinds.NON_NEGATIVE,
        "seconds a detached session waits before its reap; 0 disables reaping",
        env="HERMES_TUI_WS_ORPHAN_REAP_GRACE_S",
    ),
    Option(
        "SESSION_TTL_S",
        21600.0,
        kinds.NON_NEGATIVE,
        "idle sessions older than this are reaped (0 disables)",
        env="HERMES_TUI_SESSION_TTL_S",
    ),
    Option(
        "MAX_LIVE_SESSIONS",
        256,
        kinds.POSITIVE_INT,
        "per worker; the least recently used idle detached session is evicted beyond it",
        env="HERMES_TUI_MAX_LIVE_SESSIONS",
    ),
    Option(
        "SWEEP_INTERVAL_S",
        5.0,
        kinds.NON_NEGATIVE,
        "period of the sweep that backs every reap timer and applies the TTL",
    ),
    Option(
        "PENDING_QUESTION_TIMEOUT_S",
        3600.0,
        kinds.NON_NEGATIVE,
        "an approval/clarify question unanswered this long with no connection attached is "
        "answered `deny` / empty, so the session can finish its turn and be reaped (0 disables)",
    ),
    Option(
        "SETTLE_INTERVAL_S",
        60.0,
        kinds.NON_NEGATIVE,
        "beside other workers (`REDIS_URL`): how often each worker marks detached the rows of "
        "sessions whose host died (always once at start; 0: at start only)",
    ),
    # Agent turns.
    Option(
        "AGENT",
        "echo",
        kinds.BACKEND,
        "the agent backend: `echo` (offline), `openai`, or any `Agent` subclass as "
        '`{"BACKEND": "myapp.agents.MyAgent", "OPTIONS": {...}}` (OPTIONS: its constructor\'s '
        "keyword arguments; a dotted path string alone: none). `openai` takes its defaults from "
        "`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `MODEL`, `AGENT_TIMEOUT_S`",
        env="HERMES_AGENT",
    ),
    Option(
        "TOOLS",
        ["gateway_app.agents.tools.terminal.TerminalTool"],
        kinds.DOTTED_PATHS,
        "dotted paths of the `Tool` classes the `openai` backend offers the model (`clarify` "
        "is always offered)",
        shown="the terminal tool",
    ),
    Option(
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
        kinds.STRING,
        "OpenAI-compatible endpoint",
        env="OPENAI_BASE_URL",
    ),
    Option(
        "OPENAI_API_KEY",
        "",
        kinds.STRING,
        "sent as bearer token when set",
        env="OPENAI_API_KEY",
    ),
    Option("MODEL", "gpt-4o-mini", kinds.STRING, "model name", env="HERMES_MODEL"),
    Option(
        "AGENT_TIMEOUT_S",
        120.0,
        kinds.POSITIVE,
        "a model request that sends nothing this long fails the turn",
    ),
    Option(
        "DELTA_COALESCE_MS",
        30.0,
        kinds.NON_NEGATIVE,
        "deltas within this window go out as one frame (0: one frame per delta)",
    ),
    Option(
        "REPLAY_BUFFER_EVENTS",
        1000,
        kinds.POSITIVE_INT,
        "events of the per-session replay buffer for `session.resume` with `last_seq`",
    ),
    Option(
        "REPLAY_BUFFER_BYTES",
        1 * MiB,
        kinds.POSITIVE_INT,
        "bytes of the per-session replay buffer",
    ),
    Option(
        "HISTORY_LIMIT",
        200,
        kinds.POSITIVE_INT,
        "newest transcript messages a live session keeps in memory: the agent's context, and "
        "what `session.resume` and `/history` can show (older ones stay in the database, "
        "counted in `omitted`, paged with `session.history`)",
    ),
    Option(
        "HISTORY_BYTES",
        1 * MiB,
        kinds.POSITIVE_INT,
        "UTF-8 bytes of those messages a live session keeps in memory besides `HISTORY_LIMIT`: "
        "the oldest go first beyond it (the newest message always stays)",
    ),
    Option(
        "MAX_MESSAGE_CHARS",
        100_000,
        kinds.POSITIVE_INT,
        "characters of one stored transcript message: a longer reply is cut there, its "
        "backend stopped, a marker appended and `message.complete` says `truncated` (a tool "
        "result is cut the same way); at least `MAX_PROMPT_CHARS` (E081)",
    ),
    # Slash worker subprocess.
    Option("SLASH_TIMEOUT_S", 10.0, kinds.POSITIVE, "one slash command"),
    Option(
        "SLASH_CLOSE_TIMEOUT_S",
        2.0,
        kinds.NON_NEGATIVE,
        "each step of EOF -> terminate -> kill",
    ),
    Option(
        "SLASH_OUTPUT_LIMIT",
        64 * 1024,
        kinds.POSITIVE_INT,
        "characters of slash output returned",
    ),
    # Extensions.
    Option(
        "SLASH_COMMANDS",
        (),
        kinds.MODULE_LIST,
        "modules (dotted paths) whose `@gateway_app.slash.command` handlers join the built-in "
        "slash commands; imported by the gateway and by each slash worker, so Django-free "
        "(see [Extending](#extending))",
        shown="empty",
    ),
    Option(
        "RPC_METHODS",
        (),
        kinds.MODULE_LIST,
        "modules (dotted paths) whose `@gateway_app.rpc.dispatch.method` handlers join the "
        "JSON-RPC methods (see [Extending](#extending))",
        shown="empty",
    ),
    # The agent's terminal tool.
    Option("TERMINAL_TIMEOUT_S", 30.0, kinds.POSITIVE, "the terminal tool's command timeout"),
    Option(
        "TERMINAL_OUTPUT_LIMIT",
        16 * 1024,
        kinds.POSITIVE_INT,
        "characters of a terminal command's output returned",
    ),
    Option(
        "TERMINAL_SANDBOX",
        "bwrap",
        kinds.one_of("bwrap", "none", check_id="gateway_app.E011"),
        "`bwrap` (the tool is off if bubblewrap cannot run) or `none` (unsandboxed; warning W010)",
    ),
    Option(
        "TERMINAL_NETWORK",
        False,
        kinds.FLAG,
        "true shares the host's network with sandboxed commands",
    ),
    # rlimits of a command. Processes count per real uid: all sandboxes running at once share
    # them when the gateway runs as root (bwrap runs as uid 65534), else with the gateway's own.
    Option(
        "TERMINAL_MAX_PROCESSES",
        256,
        kinds.POSITIVE_INT,
        "rlimit of a command: processes per real uid",
    ),
    Option(
        "TERMINAL_MAX_MEMORY_BYTES",
        1 * GiB,
        kinds.POSITIVE_INT,
        "rlimit of a command: address space of each process",
    ),
    Option(
        "TERMINAL_MAX_FILE_BYTES",
        64 * MiB,
        kinds.POSITIVE_INT,
        "rlimit of a command: largest file it may write; also the size of its /tmp",
    ),
    Option(
        "TERMINAL_SCRATCH_DIR",
        "",
        kinds.ABSOLUTE_PATH,
        "absolute directory for per-session scratch dirs; empty: the system temp dir",
    ),
    # Limits (hostile input).
    Option(
        "MAX_FRAME_BYTES",
        1 * MiB,
        kinds.POSITIVE_INT,
        "larger frames close the socket (1009)",
    ),
    Option(
        "MAX_MESSAGE_BYTES",
        256 * KiB,
        kinds.POSITIVE_INT,
        "one JSON-RPC line; larger gets 4013",
    ),
    Option(
        "MAX_LINES_PER_FRAME",
        100,
        kinds.POSITIVE_INT,
        "more lines in one frame: one 4013, none executed",
    ),
    Option(
        "RATE_LIMIT_PER_S",
        200.0,
        kinds.NON_NEGATIVE,
        "per connection, the token bucket's refill rate; beyond it 4029 (a notification: "
        "dropped, logged); 0 disables",
    ),
    Option("RATE_LIMIT_BURST", 400, kinds.POSITIVE_INT, "per connection, the bucket's size"),
    Option(
        "USER_RATE_LIMIT_PER_S",
        400.0,
        kinds.NON_NEGATIVE,
        "per user and worker, a token bucket all of the user's connections share (checked "
        "besides the connection's); a message spends 1, and `session.create`, "
        "`session.resume`, `session.close`, `prompt.submit` and `slash.exec` 10 each (they "
        "start real work); beyond it 4029 (a notification: dropped, logged); 0 disables",
    ),
    Option(
        "USER_RATE_LIMIT_BURST", 800, kinds.POSITIVE_INT, "per user and worker, the bucket's size"
    ),
    Option(
        "MAX_SESSIONS_PER_USER",
        64,
        kinds.POSITIVE_INT,
        "live sessions per user and worker; at it, a new one evicts the user's least recently "
        "used idle detached session, and 4029 comes only when none is",
    ),
    Option(
        "MAX_STORED_SESSIONS_PER_USER",
        1000,
        kinds.NON_NEGATIVE_INT,
        "stored sessions kept per user: after each `session.create` (and in "
        "`manage.py gateway_cleanup`) the user's closed sessions older than their newest this "
        "many are deleted with their transcripts; sessions not closed are never deleted. "
        "0: no quota",
        env="HERMES_MAX_STORED_SESSIONS_PER_USER",
    ),
    Option(
        "SESSION_RETENTION_DAYS",
        0.0,
        kinds.NON_NEGATIVE,
        "`manage.py gateway_cleanup` deletes closed sessions (with their transcripts) idle "
        "longer than this many days; 0 keeps them forever",
        env="HERMES_SESSION_RETENTION_DAYS",
    ),
    Option(
        "MAX_CONNECTIONS_PER_USER",
        32,
        kinds.POSITIVE_INT,
        "open sockets per user and worker; beyond it the socket closes 4029",
    ),
    Option(
        "MAX_PROMPT_CHARS",
        32000,
        kinds.POSITIVE_INT,
        "longer `prompt.submit` text gets -32602",
    ),
    Option(
        "SEND_QUEUE_LIMIT",
        2000,
        kinds.POSITIVE_INT,
        "frames queued for a client that stopped reading; beyond it the socket closes 4008",
    ),
    Option(
        "SEND_QUEUE_BYTES",
        8 * MiB,
        kinds.POSITIVE_INT,
        "bytes queued for such a client; beyond it the socket closes 4008",
    ),
    Option(
        "TOKEN_RECHECK_S",
        60.0,
        kinds.NON_NEGATIVE,
        "open token and cookie sockets re-check their credential (token revoked, session gone "
        "or stale, user inactive) this often: the delay of a revocation or ended login the "
        "channel layer cannot carry (the admin's Revoke, logout, password changes and "
        "deactivation through Django, and `gateway_token --revoke` with a shared Redis layer "
        "act at once; new connects are always checked at once)",
    ),
    Option(
        "REQUIRE_PERMISSION",
        False,
        kinds.FLAG,
        "only users with the `gateway_app.use_gateway` permission (superusers have it) may "
        "connect: a WebSocket of anyone else is refused before accept (4003 / HTTP 403) and "
        "`gateway_stdio --user` refuses them. False: any active user may connect",
    ),
    # Presentation.
    Option(
        "SKIN",
        {"name": "default", "accent": "#5b8def", "banner": "Hermes gateway"},
        kinds.MAPPING,
        "sent in `gateway.ready`",
        shown="default skin",
    ),
    # Multi-worker.
    Option(
        "WORKER_NAME",
        "",
        kinds.STRING,
        "shown in the admin",
        env="HERMES_WORKER_NAME",
        shown="`host:pid`",
    ),
    Option(
        "REDIS_URL",
        "",
        kinds.REDIS_URL,
        "the Redis of the session registry the workers share. Empty: the default channel "
        "layer's first host when it is a channels-redis layer (error E043 when that host "
        "carries credentials beside its address), else one worker alone. hermes_site also "
        "makes it the channel layer's Redis",
        env="REDIS_URL",
        shown="empty (derived)",
    ),
    Option(
        "HEARTBEAT_S",
        1.0,
        kinds.POSITIVE,
        "hosts refresh their liveness key this often; at most half of `HOST_DEAD_AFTER_S`",
    ),
    Option(
        "HOST_DEAD_AFTER_S",
        3.0,
        kinds.POSITIVE,
        "a host silent this long is dead; its sessions are taken over",
    ),
    Option(
        "GROUP_REFRESH_S",
        3600.0,
        kinds.NON_NEGATIVE,
        "channel-layer group memberships (session groups, the hosts' revocations group) are "
        "renewed this often, so sockets open longer than the layer's `group_expiry` (a day) "
        "keep getting events",
    ),
    Option(
        "FORWARD_TIMEOUT_S",
        5.0,
        kinds.POSITIVE,
        "a call forwarded to another worker's host fails after this",
    ),
    Option(
        "DRAIN_TIMEOUT_S",
        10.0,
        kinds.NON_NEGATIVE,
        "a draining worker (SIGTERM, `gateway_drain`) lets running turns finish this long, "
        "then interrupts them (their partial text is kept, marked interrupted)",
    ),
    Option(
        "STORE_BATCH_MS",
        50.0,
        kinds.NON_NEGATIVE,
        "one worker: database writes are gathered this long into one batch (changes to a row "
        "merged, new rows bulk-inserted); reads and shutdown flush at once. With a shared Redis "
        "registry writes go out at once (other workers read them)",
    ),
    Option(
        "LIST_CACHE_S",
        5.0,
        kinds.NON_NEGATIVE,
        "one worker: `session.list`'s unfiltered first page answers from memory (each "
        "listing user's newest 200 rows), kept exact by the worker's own "
        "changes; rows changed by another process (not through the gateway) show within this. "
        "With a shared Redis registry every list reads the database, so sessions of other "
        "workers show at once",
    ),
    # The admin's live page.
    Option(
        "LIVE_SAMPLE_INTERVAL_S",
        5.0,
        kinds.POSITIVE,
        "each worker samples its figures for the live page's charts this often",
        env="HERMES_LIVE_SAMPLE_INTERVAL_S",
    ),
    Option(
        "LIVE_SAMPLE_WINDOW_S",
        900.0,
        kinds.POSITIVE,
        "the live page's charts span this much; each worker keeps that many seconds of "
        "samples in memory (error E075 below `LIVE_SAMPLE_INTERVAL_S`, warning W075 beyond "
        "20 000 samples)",
        env="HERMES_LIVE_SAMPLE_WINDOW_S",
    ),
    # Routing.
    Option(
        "WEBSOCKET_PATH",
        "api/ws",
        kinds.URL_PATH,
        "path of the WebSocket endpoint the route and the chat page use (no leading slash)",
    ),
    # Operations.
    Option(
        "METRICS_ALLOW",
        "127.0.0.0/8,::1/128",
        kinds.NETWORKS,
        "comma-separated networks (CIDR) whose direct requests may read `GET /metrics` "
        "without logging in; a request that passed a proxy (`X-Forwarded-For`, `Forwarded`, "
        "`X-Real-IP`, daphne's `--proxy-headers-host`) never counts as from its address. "
        "Empty: only staff and holders of "
        "`gateway_app.view_gatewaysession`, by login or API token (see [Metrics](#metrics))",
        env="HERMES_METRICS_ALLOW",
        shown="loopback",
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
