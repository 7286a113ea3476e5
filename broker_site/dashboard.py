"""What the apps' admin pages share: every change goes through a service, as the person signed in.

Django's admin would otherwise save and delete rows itself, skipping the rules, the events
and the audit trail that the services own. Each ModelAdmin here names the service that
deletes one object (`delete_through_service`) and what deleting it takes with it
(`deletion_summary`, shown on the confirmation page instead of Django's walk over every
related row, which for a project with a million messages would never finish).
"""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from broker_site.errors import BrokerError
from projects.auth import Staff


def staff(request) -> Staff:
    """The signed-in admin user, as services and the audit trail know them."""
    return Staff.admin_user(request.user)


def keys_shown_once(request, title: str, keys: list, back_url: str) -> TemplateResponse:
    """Render new raw keys on a page of their own: never in a message, a cookie or a log."""
    context = {**admin.site.each_context(request), "title": title, "keys": keys, "back_url": back_url}
    response = TemplateResponse(request, "admin/broker_keys_shown_once.html", context)
    response["Cache-Control"] = "no-store"
    return response


class ShownOnly(admin.ModelAdmin):
    """Rows the dashboard shows and never changes: their services are the only way in."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def done_for_each(admin_page: admin.ModelAdmin, request, queryset, change, done: str) -> None:
    """An admin action: `change(obj, caller=the signed-in user)` for each selected object, then say what was done."""
    for obj in queryset:
        change(obj, caller=staff(request))
    admin_page.message_user(request, f"{done} {queryset.count()} {admin_page.opts.verbose_name_plural}.")


class ThroughServices(admin.ModelAdmin):
    """A ModelAdmin whose deletes go through a service, one object at a time, errors reported."""

    def delete_through_service(self, request, obj) -> None:
        raise NotImplementedError

    def deletion_summary(self, obj) -> list[str]:
        return [str(obj)]

    def refusal(self, obj) -> str | None:
        """Why `obj` may not be deleted now (shown, and the deletion refused), or None."""
        return None

    def get_deleted_objects(self, objs, request):
        summary = [line for obj in objs for line in self.deletion_summary(obj)]
        refused = [reason for reason in (self.refusal(obj) for obj in objs) if reason]
        can_delete = all(self.has_delete_permission(request, obj) for obj in objs)
        perms_needed = set() if can_delete else {self.opts.verbose_name}
        return summary, {self.opts.verbose_name_plural: len(objs)}, perms_needed, refused

    def delete_model(self, request, obj) -> None:
        try:
            self.delete_through_service(request, obj)
        except BrokerError as exc:
            request._broker_delete_failed = True
            self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_broker_delete_failed", False):
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        return super().response_delete(request, obj_display, obj_id)
