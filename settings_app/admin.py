"""Django admin: the outgoing email settings, the connection test history and the audit log, all read-only.

Settings change only through the settings page, which validates them and can test them;
the admin shows them without any secret (every EncryptedTextField is left out and only
its status is shown). Test history is a record: nobody adds, edits or deletes runs here.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from settings_app.fields import EncryptedTextField, UnreadableSecret
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings, SettingsChange


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class BoundedCountPaginator(Paginator):
    """Counts at most ``count_limit`` rows: a history list never runs COUNT(*) over the whole table.

    ``capped`` is True when there are more rows than that; the list then shows "N+"."""

    def __init__(self, *args, count_limit: int = 10_000, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count_limit = count_limit

    @cached_property
    def _bounded_count(self) -> int:
        return self.object_list.order_by()[: self.count_limit + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._bounded_count, self.count_limit)

    @property
    def capped(self) -> bool:
        return self._bounded_count > self.count_limit


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, int(request.GET.get(PAGE_VAR, 1)))
    except ValueError:
        return 1


class _HistoryAdmin(_ReadOnlyAdmin):
    """A history list counts only as far as PAGES_AHEAD pages past the one shown: a page costs
    what its number costs (OFFSET), not what the table's size would, and every page stays
    reachable by paging on."""

    PAGES_AHEAD = 10
    show_full_result_count = False

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        # Above list_max_show_all, so "Show all" is offered only when the whole list is counted.
        limit = max((_page_number(request) + self.PAGES_AHEAD) * per_page, self.list_max_show_all + 1)
        return BoundedCountPaginator(queryset, per_page, orphans, allow_empty_first_page, count_limit=limit)


def _secret_fields() -> list[EncryptedTextField]:
    return [field for field in OutgoingEmailSettings._meta.concrete_fields if isinstance(field, EncryptedTextField)]


@admin.register(OutgoingEmailSettings)
class OutgoingEmailSettingsAdmin(_ReadOnlyAdmin):
    list_display = ("__str__", "protocol", "server", "port", "sender_email", "updated_at", "updated_by")

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        """Every stored field except the primary key and the secrets, then the secrets' status."""
        hidden = set(_secret_fields())
        shown = [
            field.name
            for field in OutgoingEmailSettings._meta.concrete_fields
            if field not in hidden and not field.primary_key
        ]
        return [*shown, "saved_secrets", "settings_page"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.get_fields(request, obj)

    @admin.display(description=_("Secrets"))
    def saved_secrets(self, obj: OutgoingEmailSettings) -> str:
        rows = [
            (field.verbose_name.capitalize(), _secret_status(getattr(obj, field.attname))) for field in _secret_fields()
        ]
        return format_html_join("", "<div>{}: {}</div>", rows)

    @admin.display(description=_("Where to change them"))
    def settings_page(self, obj: OutgoingEmailSettings) -> str:
        return format_html(
            gettext('<a href="{url}">Settings &gt; Outgoing Email</a>, which validates and tests them'),
            url=reverse("outgoing_email"),
        )


def _secret_status(value: object) -> str:
    if isinstance(value, UnreadableSecret):
        return gettext("saved, but no configured encryption key decrypts it: enter it again")
    return gettext("saved") if value else gettext("not set")


@admin.register(ConnectionTestRun)
class ConnectionTestRunAdmin(_HistoryAdmin):
    list_display = ("created_at", "outcome", "failed_step_name", "trigger", "user", "protocol", "server", "duration_ms")
    list_filter = ("outcome", "trigger", "protocol")
    list_select_related = ("user",)
    fields = (
        "created_at",
        "user",
        "trigger",
        "outcome",
        "duration_ms",
        "protocol",
        "server",
        "step_summary",
        "steps",
        "token_claims",
    )
    readonly_fields = fields

    @admin.display(description=_("Failed step"))
    def failed_step_name(self, obj: ConnectionTestRun) -> str:
        step = obj.failed_step
        return step["name"] if step else "-"

    @admin.display(description=_("Steps"))
    def step_summary(self, obj: ConnectionTestRun) -> str:
        rows = [
            (step.get("status", ""), step.get("label") or step.get("name", ""), step.get("code", ""))
            for step in obj.steps
        ]
        return format_html_join("", "<div>{} &middot; {} {}</div>", rows)


@admin.register(SettingsChange)
class SettingsChangeAdmin(_HistoryAdmin):
    list_display = ("created_at", "user", "changed_fields")
    list_select_related = ("user",)
    fields = ("created_at", "user", "changes")
    readonly_fields = fields

    @admin.display(description=_("Changed fields"))
    def changed_fields(self, obj: SettingsChange) -> str:
        return ", ".join(item["label"] for item in obj.changes)
