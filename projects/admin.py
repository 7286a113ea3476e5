"""The operators' dashboard for projects and keys. Every change goes through a service, as the signed-in user."""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse

from broker_site.dashboard import ShownOnly, ThroughServices, done_for_each, keys_shown_once, staff
from broker_site.errors import BrokerError
from projects import links, services
from projects.models import ApiKey, AuditEvent, Project, ProjectLink
from projects.quotas import QUOTA_FIELDS, quotas_checked
from projects.selectors import api_key_get
from routing import lifecycle
from routing.selectors import project_stats


class ProjectForm(forms.ModelForm):
    """Quotas over the broker's ceilings are shown as form errors (the service refuses them anyway)."""

    caller = None  # the signed-in user, set per request by ProjectAdmin.get_form

    def clean(self):
        data = super().clean()
        try:
            quotas_checked(self.instance, {name: data[name] for name in QUOTA_FIELDS if name in data}, self.caller)
        except BrokerError as exc:
            for name, problems in exc.details.get("fields", {}).items():
                self.add_error(name, problems)
        return data


@admin.register(Project)
class ProjectAdmin(ThroughServices):
    form = ProjectForm
    list_display = ("id", "name", "status", "discoverable", "max_sessions", "created_at")
    list_filter = ("status", "discoverable")
    search_fields = ("id", "name")
    actions = ("deactivate", "activate", "delete_selected")
    readonly_fields = ("status", "created_at", "updated_at", "stats")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.caller = staff(request)
        return form

    def get_readonly_fields(self, request, obj=None):
        # The id is the project's identity and part of every key: fixed once created.
        return (*self.readonly_fields, "id") if obj else self.readonly_fields

    @admin.display(description="stats")
    def stats(self, obj: Project) -> str:
        return str(project_stats(obj)) if obj.pk else "-"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            services.project_update(obj, {name: form.cleaned_data[name] for name in form.changed_data
                                          if name in services.UPDATABLE_FIELDS}, caller=staff(request))
            return
        config = {name: form.cleaned_data[name] for name in services.CONFIG_FIELDS if name in form.cleaned_data}
        project, key, raw = services.project_create(
            project_id=form.cleaned_data["id"], name=form.cleaned_data["name"],
            description=form.cleaned_data.get("description", ""),
            discoverable=form.cleaned_data.get("discoverable", False), config=config, caller=staff(request))
        obj.pk = project.pk
        request._broker_new_keys = [(key, raw)]

    def response_add(self, request, obj, post_url_continue=None):
        new_keys = getattr(request, "_broker_new_keys", None)
        if new_keys:
            return keys_shown_once(request, f"Project {obj.pk} created", new_keys,
                                   reverse("admin:projects_project_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def deletion_summary(self, obj: Project) -> list[str]:
        stats = project_stats(obj)
        return [f"Project {obj.pk} with {sum(stats['sessions'].values())} sessions, {stats['protocols']} protocols, "
                f"{obj.api_keys.count()} keys and every message in it; its live sessions are disconnected first."]

    def delete_through_service(self, request, obj: Project) -> None:
        lifecycle.project_delete(obj, caller=staff(request))

    @admin.action(description="Deactivate (disconnect sessions, refuse requests, keep history)")
    def deactivate(self, request, queryset) -> None:
        done_for_each(self, request, queryset, lifecycle.project_deactivate, "Deactivated")

    @admin.action(description="Activate")
    def activate(self, request, queryset) -> None:
        done_for_each(self, request, queryset, services.project_activate, "Activated")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "project", "role", "label", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("role", "project")
    search_fields = ("key_id", "label", "project__id")
    actions = ("rotate", "revoke")
    fields = ("project", "role", "label", "expires_at")
    readonly_fields = ("key_id", "digest_prefix", "created_at", "revoked_at", "last_used_at", "replaced_by")

    def get_fields(self, request, obj=None):
        return (*self.fields, *self.readonly_fields) if obj else self.fields

    def get_readonly_fields(self, request, obj=None):
        # Once issued, a key's project and role never change: rotate or revoke it instead.
        return ("project", "role", *self.readonly_fields) if obj else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, never deleted: the trail and the rotation chain keep pointing at it

    @admin.display(description="digest")
    def digest_prefix(self, obj: ApiKey) -> str:
        return f"sha256:{obj.digest[:12]}…"

    def save_model(self, request, obj, form, change) -> None:
        if change:
            # The form has already set the new values on obj: the service compares against the stored key.
            stored = api_key_get(obj.project, obj.key_id)
            services.api_key_update(stored, {name: form.cleaned_data[name] for name in form.changed_data},
                                    caller=staff(request))
            return
        key, raw = services.api_key_create(form.cleaned_data["project"], role=form.cleaned_data["role"],
                                           label=form.cleaned_data["label"],
                                           expires_at=form.cleaned_data["expires_at"], caller=staff(request))
        obj.pk = key.pk
        request._broker_new_keys = [(key, raw)]

    def response_add(self, request, obj, post_url_continue=None):
        new_keys = getattr(request, "_broker_new_keys", None)
        if new_keys:
            return keys_shown_once(request, "Key created", new_keys, reverse("admin:projects_apikey_changelist"))
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Rotate (new key now; old key valid for 300 s)")
    def rotate(self, request, queryset):
        new_keys = []
        for key in queryset:
            try:
                new_keys.append(services.api_key_rotate(key, caller=staff(request)))
            except BrokerError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.ERROR)
        if new_keys:
            return keys_shown_once(request, "Keys rotated", new_keys, reverse("admin:projects_apikey_changelist"))
        return None

    @admin.action(description="Revoke now")
    def revoke(self, request, queryset) -> None:
        done_for_each(self, request, queryset, services.api_key_revoke, "Revoked")


@admin.register(ProjectLink)
class ProjectLinkAdmin(ShownOnly):
    """Consent between projects is each side's admin's to give, through the link services; the dashboard
    only reads a link, and as operator suspends, resumes or revokes it (projects.links.link_manage)."""

    list_display = ("source", "target_project_id", "state", "direction", "rate_limit_per_minute",
                    "max_message_bytes", "sent", "delivered", "refused")
    list_filter = ("state",)
    search_fields = ("source__id", "target_project_id")
    actions = ("suspend", "resume", "revoke")

    def get_queryset(self, request):
        links.traffic_flushed()  # this process's latest counts, before they are shown
        return super().get_queryset(request)

    @admin.display(description="refused")
    def refused(self, obj: ProjectLink) -> str:
        return ", ".join(f"{reason} {count}" for reason, count in obj.refusals.items() if count) or "-"

    def _managed(self, request, queryset, action: str, done: str) -> None:
        # Each link on its own: one already revoked (or suspended by a side) is reported, the others still change.
        changed = 0
        for link in queryset:
            try:
                links.link_manage(None, str(link.pk), action, caller=staff(request))
                changed += 1
            except BrokerError as exc:
                self.message_user(request, f"{link}: {exc.message}", messages.ERROR)
        if changed:
            self.message_user(request, f"{done} {changed} {self.opts.verbose_name_plural}.")

    @admin.action(description="Suspend (as operator; only an operator resumes it)")
    def suspend(self, request, queryset) -> None:
        self._managed(request, queryset, "suspend", "Suspended")

    @admin.action(description="Resume (links an operator suspended)")
    def resume(self, request, queryset) -> None:
        self._managed(request, queryset, "resume", "Resumed")

    @admin.action(description="Revoke (ends the link for good)")
    def revoke(self, request, queryset) -> None:
        self._managed(request, queryset, "revoke", "Revoked")


@admin.register(AuditEvent)
class AuditEventAdmin(ShownOnly):
    list_display = ("created_at", "action", "outcome", "count", "actor_key_id", "source_project", "target_project",
                    "remote_addr")
    list_filter = ("outcome", "action")
    search_fields = ("actor_key_id", "source_project", "target_project", "remote_addr")
    date_hierarchy = "created_at"
