"""
The admin: gateway sessions (with their read-only transcript and operator teardown), API
tokens (hashed; the raw token is shown once, at creation) and the "Live gateway" page.
Projects may show the gateway's links on their admin index too by setting
``admin.site.index_template = "admin/gateway_app/index.html"`` (hermes_site does).
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .auth.tokens import revoke_token_sync
from .dashboard import views
from .models import ApiToken, GatewaySession, Message, SessionStatus
from .sessions.control import request_drain, request_teardown

# The gateway's pages are linked from the app's own admin section
# (templates/admin/gateway_app/app_index.html, which Django picks for this app) and from the
# session changelist; the site's index template stays the host project's.


def _may_use_terminal() -> ExpressionWrapper:
    """The owner's ``has_perm("gateway_app.use_terminal")`` as a query expression."""
    user_model = get_user_model()
    perm = {
        "permission__codename": "use_terminal",
        "permission__content_type__app_label": "gateway_app",
    }
    direct = user_model.user_permissions.through.objects.filter(user=OuterRef("user_id"), **perm)
    by_group = Group.permissions.through.objects.filter(group__user=OuterRef("user_id"), **perm)
    allowed = Q(user__is_active=True) & (
        Q(user__is_superuser=True) | Exists(direct) | Exists(by_group)
    )
    return ExpressionWrapper(allowed, output_field=BooleanField())


def short_datetime(value: datetime | None) -> str:
    """A changelist date in a narrow column: the day over the time (the year only when it is
    not this one); the full timestamp on hover."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    day = local.strftime("%b %d" if local.year == timezone.localtime().year else "%Y-%m-%d")
    return format_html(
        '<time datetime="{}" title="{}">{}<br>{}</time>',
        local.isoformat(),
        local,
        day,
        local.strftime("%H:%M"),
    )


class MessageInline(admin.TabularInline):
    """The session transcript, read-only."""

    model = Message
    fields = ("created_at", "role", "content", "interrupted", "turn_id")
    readonly_fields = fields
    ordering = ("id",)
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GatewaySession)
class GatewaySessionAdmin(admin.ModelAdmin):
    # Compact columns (status with its attachments, host with its slash pid, short dates)
    # so the whole row fits beside the navigation and the filter at 1280 px.
    list_display = (
        "display_title",
        "display_user",
        "display_status",
        "display_host",
        "display_created",
        "display_activity",
        "message_count",
    )
    list_filter = ("status", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("title", "^id", "user__username")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    actions = ("close_sessions", "reap_sessions", "drain_workers")
    inlines = (MessageInline,)
    fields = (
        "id",
        "user",
        "title",
        "status",
        "close_reason",
        "attached",
        "host_worker",
        "host_channel",
        "slash_pid",
        "seq",
        "created_at",
        "last_activity",
        "closed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(message_count=Count("messages"), terminal_allowed=_may_use_terminal())
        )

    @admin.display(description="title", ordering="title")
    def display_title(self, obj: GatewaySession) -> str:
        return obj.title or f"({obj.pk[:8]}…)"

    @admin.display(description="status", ordering="status")
    def display_status(self, obj: GatewaySession) -> str:
        return f"{obj.status} · {obj.attached} attached" if obj.attached else obj.status

    @admin.display(description="host", ordering="host_worker")
    def display_host(self, obj: GatewaySession) -> str:
        host = obj.host_worker or "-"
        return f"{host} · pid {obj.slash_pid}" if obj.slash_pid else host

    @admin.display(description="created", ordering="created_at")
    def display_created(self, obj: GatewaySession) -> str:
        return short_datetime(obj.created_at)

    @admin.display(description="activity", ordering="last_activity")
    def display_activity(self, obj: GatewaySession) -> str:
        return short_datetime(obj.last_activity)

    @admin.display(description="last seq")
    def seq(self, obj: GatewaySession) -> str:
        # While a host holds the session, the row keeps a bound reserved ahead of its seqs
        # (so a revival after a crash never reuses one); a closed row has the exact seq.
        if obj.status == SessionStatus.CLOSED:
            return str(obj.last_seq)
        return f"below {obj.last_seq} (reserved ahead while live)"

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, obj: GatewaySession) -> int:
        return obj.message_count

    @admin.display(description="user", ordering="user__username")
    def display_user(self, obj: GatewaySession) -> str:
        """The owner, marked when they hold gateway_app.use_terminal (directly, by group or as
        superuser): the one permission that lets a session run commands."""
        if not obj.terminal_allowed:
            return str(obj.user)
        return format_html(
            '{}<br><small title="may use the terminal tool">terminal</small>', obj.user
        )

    def has_add_permission(self, request) -> bool:
        return False  # sessions are created by clients over the wire

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting the row of a live session would orphan its host state: close it first.
        if obj is not None and obj.status != SessionStatus.CLOSED:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # would delete live rows; see above
        return actions

    ### Actions: the one shared teardown, run by each session's host ###

    def _teardown(self, request, queryset, reason: str, verb: str) -> None:
        requested = skipped = 0
        for row in queryset:
            if request_teardown(row, reason):
                requested += 1
            else:
                skipped += 1
        if requested:
            self.message_user(
                request,
                f"{verb} requested for {requested} session(s); each host tears it down now.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request, f"{skipped} session(s) were already closed.", messages.WARNING
            )

    @admin.action(description="Close selected sessions", permissions=["change"])
    def close_sessions(self, request, queryset) -> None:
        self._teardown(request, queryset, "closed", "Close")

    @admin.action(description="Reap selected sessions now", permissions=["change"])
    def reap_sessions(self, request, queryset) -> None:
        self._teardown(request, queryset, "reaped", "Reap")

    @admin.action(description="Drain the workers hosting selected sessions", permissions=["change"])
    def drain_workers(self, request, queryset) -> None:
        """A graceful restart of each named worker: its sessions move to the others."""
        names = sorted({row.host_worker for row in queryset if row.host_worker})
        asked = [name for name in names if request_drain(name)]
        if asked:
            self.message_user(request, f"Drain requested for {', '.join(asked)}.", messages.SUCCESS)
        if len(asked) < len(names) or not names:
            self.message_user(
                request, "Some selected sessions have no live worker to drain.", messages.WARNING
            )

    ### The live gateway page ###

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "live/",
                self.admin_site.admin_view(self.live_view),
                name="{}_{}_live".format(*info),
            ),
            path("live.json", views.live_json, name="{}_{}_live_json".format(*info)),
            *super().get_urls(),
        ]

    def live_view(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": "Live gateway",
            "opts": self.opts,
            "json_url": reverse("admin:gateway_app_gatewaysession_live_json"),
            "changelist_url": reverse("admin:gateway_app_gatewaysession_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/gateway_app/live.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix_display", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    actions = ("revoke_tokens",)
    # key_hash is never shown: it is not a usable token, and showing it invites confusion.
    readonly_fields = ("prefix_display", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="token", ordering="prefix")
    def prefix_display(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…" if obj.prefix else "-"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name")
        return ("user", "name", "prefix_display", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("user", *self.readonly_fields)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = ApiToken.mint(obj.user, obj.name)
        # The admin goes on with ``obj`` (log entry, redirect): make it the minted row.
        for field in ApiToken._meta.concrete_fields:
            setattr(obj, field.attname, getattr(token, field.attname))
        obj._state.adding = False
        obj._state.db = token._state.db
        messages.success(
            request,
            f"New token for {obj.user}: {raw} — copy it now, it is shown only this once "
            "(only its hash is stored).",
        )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset) -> None:
        # Through tokens.revoke_token: besides marking the row, it closes the open sockets.
        count = sum(
            revoke_token_sync(pk)
            for pk in queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True)
        )
        self.message_user(
            request, f"Revoked {count} token(s); their open sockets were closed.", messages.SUCCESS
        )
