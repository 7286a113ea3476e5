"""REST face for projects, keys and the audit trail. Thin: read the contract, call a service, shape output."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_site.rest import body, query, query_parameters
from projects import selectors, services
from projects.contracts import (
    KeyCreateIn,
    KeyRotateIn,
    ListProjectsIn,
    ProjectCreateIn,
    ProjectInfoIn,
    ProjectUpdateIn,
)
from routing.lifecycle import project_deactivate
from routing.selectors import project_stats


class ProjectListView(APIView):
    @extend_schema(operation_id="projects_list", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(ListProjectsIn), summary="List projects")
    def get(self, request):
        listing = query(request, ListProjectsIn)
        projects = selectors.projects_visible(request.auth, name_filter=listing.name_filter,
                                              include_inactive=listing.include_inactive)
        items = [selectors.project_summary(p, caller=request.auth,
                                           stats=project_stats(p) if listing.include_stats else None)
                 for p in projects]
        return Response({"projects": items, "count": len(items)})

    @extend_schema(operation_id="project_create", responses=OpenApiTypes.OBJECT,
                   request=ProjectCreateIn, summary="Create a project (operators); returns its first admin key once")
    def post(self, request):
        asked = body(request, ProjectCreateIn)
        project, key, raw = services.project_create(
            project_id=asked.project_id, name=asked.name, description=asked.description,
            discoverable=asked.discoverable, config=asked.config.changes() if asked.config else None,
            caller=request.auth)
        reply = selectors.project_summary(project, caller=request.auth, include_config=True)
        reply["admin_key"] = selectors.api_key_created(key, raw)
        return Response(reply, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(operation_id="project_info", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(ProjectInfoIn), summary="Project info")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id, allow_discoverable=True)
        asked = query(request, ProjectInfoIn)
        return Response(selectors.project_summary(
            project, caller=request.auth, include_config=asked.include_config,
            stats=project_stats(project) if asked.include_stats else None,
            include_permissions=asked.include_permissions))

    @extend_schema(operation_id="project_update", responses=OpenApiTypes.OBJECT,
                   request=ProjectUpdateIn, summary="Change a project's description or settings (admins)")
    def patch(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        project = services.project_update(project, body(request, ProjectUpdateIn).changes(), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth, include_config=True))


class ProjectDeactivateView(APIView):
    @extend_schema(operation_id="project_deactivate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Deactivate a project (operators): sessions end, history stays")
    def post(self, request, project_id: str):
        project = project_deactivate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class ProjectActivateView(APIView):
    @extend_schema(operation_id="project_activate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Activate a project again (operators)")
    def post(self, request, project_id: str):
        project = services.project_activate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class KeyListView(APIView):
    @extend_schema(operation_id="api_keys_list", responses=OpenApiTypes.OBJECT,
                   summary="List a project's keys (admins); never the secrets")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        keys = [selectors.api_key_summary(k) for k in selectors.api_keys_of(project, request.auth)]
        return Response({"keys": keys, "count": len(keys)})

    @extend_schema(operation_id="api_key_create", responses=OpenApiTypes.OBJECT,
                   request=KeyCreateIn, summary="Create a key (admins); the key is shown once")
    def post(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        asked = body(request, KeyCreateIn)
        key, raw = services.api_key_create(project, role=asked.role, label=asked.label, expires_at=asked.expires_at,
                                           caller=request.auth)
        return Response(selectors.api_key_created(key, raw), status=status.HTTP_201_CREATED)


class KeyRotateView(APIView):
    @extend_schema(operation_id="api_key_rotate", responses=OpenApiTypes.OBJECT,
                   request=KeyRotateIn, summary="Rotate a key: a new key now, the old one valid for the grace period")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        grace = body(request, KeyRotateIn).grace_period_seconds
        new_key, raw = services.api_key_rotate(selectors.api_key_get(project, key_id), grace_period_seconds=grace,
                                               caller=request.auth)
        return Response(selectors.api_key_created(new_key, raw), status=status.HTTP_201_CREATED)


class KeyRevokeView(APIView):
    @extend_schema(operation_id="api_key_revoke", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Revoke a key at once (admins)")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        key = services.api_key_revoke(selectors.api_key_get(project, key_id), caller=request.auth)
        return Response(selectors.api_key_summary(key))


class AuditListView(APIView):
    @extend_schema(operation_id="audit_list", responses=OpenApiTypes.OBJECT,
                   summary="The project's audit trail, newest first (admins)")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        events = [selectors.audit_event_summary(e) for e in selectors.audit_events_of(project, request.auth)]
        return Response({"events": events, "count": len(events)})


urlpatterns = [
    path("projects/", ProjectListView.as_view()),
    path("projects/<str:project_id>/", ProjectDetailView.as_view()),
    path("projects/<str:project_id>/deactivate/", ProjectDeactivateView.as_view()),
    path("projects/<str:project_id>/activate/", ProjectActivateView.as_view()),
    path("projects/<str:project_id>/keys/", KeyListView.as_view()),
    path("projects/<str:project_id>/keys/<str:key_id>/rotate/", KeyRotateView.as_view()),
    path("projects/<str:project_id>/keys/<str:key_id>/revoke/", KeyRevokeView.as_view()),
    path("projects/<str:project_id>/audit/", AuditListView.as_view()),
]
