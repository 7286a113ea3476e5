"""File leases in the operators' dashboard: who holds which paths; an operator can release one (its waiters are
told, as on any release). Sessions lease and renew them themselves."""

from django.contrib import admin

from broker_site.dashboard import ThroughServices, staff
from leases.models import FileLease
from leases.services import lease_end


@admin.register(FileLease)
class FileLeaseAdmin(ThroughServices):
    list_display = ("pattern", "mode", "workspace", "session", "project", "reason", "expires_at")
    list_filter = ("project", "mode")
    search_fields = ("pattern", "reason")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project", "session")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_through_service(self, request, obj: FileLease) -> None:
        lease_end(obj, caller=staff(request))
