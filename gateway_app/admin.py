"""
The admin: gateway sessions (with their read-only transcript and operator teardown), API
tokens (hashed; the raw token is shown once, at creation) and the "Live gateway" page.
Projects may show the gateway's links on their admin index too by setting
``admin.site.index_template = "admin/gateway_app/index.html"`` (hermes_site does).
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .auth.tokens import revoke_token_sync
from .dashboard import views
from .dashboard.transcript import TranscriptPage, transcript_page
from .models import ApiToken, GatewaySession, SessionStatus
from .sessions.control import request_drain, request_teardown

# The gateway's pages are linked from the app's own admin section
# (templates/admin/gateway_app/app_index.html, which Django picks for this app) and from the
# session changelist; the site's index template stays the host project's.


def terminal_users(user_ids: set[int]) -> set[int]:
    """Those of the users who hold ``gateway_app.use_terminal`` (``has_perm``: directly, by
    group or as superuser, and active), in one query."""
    user_model = get_user_model()
    perm = {
        "permission__codename": "use_terminal",
        "permission__content_type__app_label": "gateway_app",
    }
    direct = user_model.user_permissions.through.objects.filter(user=OuterRef("pk"), **perm)
    by_group = Group.permissions.through.objects.filter(group__user=OuterRef("pk"), **perm)
    allowed = Q(is_active=True) & (Q(is_superuser=True) | Exists(direct) | Exists(by_group))
    rows = user_model._default_manager.filter(allowed, pk__in=user_ids)
    return set(rows.values_list("pk", flat=True))


class SessionChangeList(ChangeList):
    """The changelist, with each shown row's ``terminal_allowed`` looked up for the page
    only: as an annotation, its joins would ride along into the paginator's COUNT."""

    def get_results(self, request) -> None:
        super().get_results(request)
        allowed = terminal_users({row.user_id for row in self.result_list})
        for row in self.result_list:
            row.terminal_allowed = row.user_id in allowed


def _message_id(value: str | None) -> int | None:
    """A transcript cursor from the query string; ``ValueError`` unless a positive id."""
    if value is None:
        return None
    if not value.isdigit() or not value.isascii():
        raise ValueError(value)
    return int(value)


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


class OwnerListFilter(admin.RelatedFieldListFilter):
    """The users who own sessions, found with one index probe per user: Django's
    ``RelatedOnlyFieldListFilter`` reads every session row for their distinct owners."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        owns = Exists(GatewaySession.objects.filter(user=OuterRef("pk")))
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=Q(owns))


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
    # Created-at as fixed ranges: a date_hierarchy drilldown reads every row's date.
    list_filter = ("status", ("user", OwnerListFilter), ("created_at", admin.DateFieldListFilter))
    # A search reads the session rows (title substring), never the transcripts.
    search_fields = ("title", "^id", "user__username")
    list_select_related = ("user",)
    # Only orders an index walks (see GatewaySession.Meta.indexes): any other column would
    # sort the whole table for each page.
    sortable_by = ("display_created", "display_activity")
    # "N total" beside a filtered count is a second COUNT over the whole table.
    show_full_result_count = False
    actions = ("close_sessions", "reap_sessions", "drain_workers")
    #: Messages on one transcript page (the change form shows the newest page).
    transcript_page_size = 100
    change_form_template = "admin/gateway_app/gatewaysession/change_form.html"
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

    def get_changelist(self, request, **kwargs):
        return SessionChangeList

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
            path(
                "<path:object_id>/transcript/",
                self.admin_site.admin_view(self.transcript_view),
                name="{}_{}_transcript".format(*info),
            ),
            path(
                "live/samples.json",
                views.live_samples_json,
                name="{}_{}_live_samples_json".format(*info),
            ),
            *super().get_urls(),
        ]

    ### Transcripts, a keyset page at a time ###

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            page = transcript_page(obj.pk, limit=self.transcript_page_size)
            context = {**context, **self._transcript_context(obj.pk, page)}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def transcript_view(self, request, object_id: str):
        if not self.has_view_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None or not self.has_view_permission(request, session):
            raise Http404("No such session")
        try:
            before, after = (_message_id(request.GET.get(name)) for name in ("before", "after"))
        except ValueError:
            return HttpResponseBadRequest("before and after are message ids")
        page = transcript_page(
            session.pk, before=before, after=after, limit=self.transcript_page_size
        )
        context = {
            **self.admin_site.each_context(request),
            **self._transcript_context(object_id, page),
            "title": f"Transcript of {session}",
            "opts": self.opts,
            "original": session,
            "change_url": reverse("admin:gateway_app_gatewaysession_change", args=[object_id]),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/gateway_app/gatewaysession/transcript.html", context
        )

    @staticmethod
    def _transcript_context(object_id: str, page: TranscriptPage) -> dict[str, object]:
        return {
            "transcript": page,
            "transcript_url": reverse(
                "admin:gateway_app_gatewaysession_transcript", args=[object_id]
            ),
        }

    def live_view(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": "Live gateway",
            "opts": self.opts,
            "json_url": reverse("admin:gateway_app_gatewaysession_live_json"),
            "samples_url": reverse("admin:gateway_app_gatewaysession_live_samples_json"),
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
