"""
What outlives a worker: sessions with their transcripts (so a reaped or crashed session can be
cold-resumed) and hashed API tokens. Live state (attachment, turns, slash workers) is held by
the session's host worker; the hot fields here are written at lifecycle transitions only.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def new_session_id() -> str:
    # Hex: safe in channel-layer group names (ASCII letters/digits, < 100 chars).
    return uuid.uuid4().hex


class SessionStatus(models.TextChoices):
    LIVE = "live", "live"
    RUNNING = "running", "running"
    DETACHED = "detached", "detached"
    CLOSED = "closed", "closed"


class CloseReason(models.TextChoices):
    CLOSED = "closed", "closed by client"
    REAPED = "reaped", "reaped after disconnect"
    TTL = "ttl", "idle past TTL"
    EVICTED = "evicted", "evicted (live-session cap)"


class GatewaySession(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_session_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_sessions"
    )
    title = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.LIVE, db_index=True
    )
    close_reason = models.CharField(max_length=16, choices=CloseReason.choices, blank=True)
    attached = models.PositiveIntegerField(default=0, help_text="connections attached now")
    host_worker = models.CharField(max_length=200, blank=True)
    host_channel = models.CharField(max_length=200, blank=True)
    slash_pid = models.PositiveIntegerField(null=True, blank=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_activity = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Kept by the session store in the batch that writes the transcript rows, so listing
    # sessions never counts their messages.
    message_count = models.PositiveIntegerField(
        "messages", default=0, editable=False, help_text="transcript rows stored"
    )

    class Meta:
        ordering = ["-last_activity"]
        verbose_name = "gateway session"
        indexes = [
            # session.list pages walk this index (keyset on last_activity, id, newest first).
            models.Index(
                fields=["user", "-last_activity", "-id"], name="gateway_session_list_page"
            ),
            # The admin changelist's default order (its -pk tiebreak included), unfiltered
            # and filtered by status; gateway_cleanup walks the closed rows of the second
            # oldest first (a backward scan).
            models.Index(fields=["-last_activity", "-id"], name="gateway_session_activity"),
            models.Index(
                fields=["status", "-last_activity", "-id"], name="gateway_session_status_page"
            ),
        ]
        permissions = [
            # Checked by the session's host, for the session's owner, at each terminal tool call.
            ("use_terminal", "Can run shell commands with the agent's terminal tool"),
            # Checked at each WebSocket connect and gateway_stdio start when REQUIRE_PERMISSION.
            ("use_gateway", "Can connect to the gateway (when REQUIRE_PERMISSION is on)"),
        ]

    def __str__(self) -> str:
        return self.title or self.id


class Message(models.Model):
    """One transcript entry: a user prompt, an assistant reply, or a tool call with result."""

    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"
        TOOL = "tool", "tool"

    session = models.ForeignKey(GatewaySession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    turn_id = models.CharField(max_length=32, blank=True)
    data = models.JSONField(default=dict, blank=True)
    interrupted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        # Transcript pages are keyset pages on id within one session.
        indexes = [models.Index(fields=["session", "id"], name="gateway_message_session_page")]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


TOKEN_PREFIX = "hgw_"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token for non-browser clients. Only its SHA-256 is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="first characters")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def mint(cls, user, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns the row and the raw token (shown once)."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, key_hash=hash_token(raw), prefix=raw[: len(TOKEN_PREFIX) + 6]
        )
        return token, raw

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
