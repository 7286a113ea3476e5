"""REST face for projects, keys, links between projects and the audit trail. Thin: read the contract, call a
service, shape output."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from broker_site.rest import Endpoint, body, listing, query, query_parameters, rest_routes
from projects import links, selectors, services
from projects.contracts import (
    KeyCreateIn,
    KeyRotateIn,
    LinkListIn,
    LinkRequestIn,
    LinkTermsIn,
    ListProjectsIn,
    ProjectCreateIn,
    ProjectInfoIn,
    ProjectUpdateIn,
)
from routing.lifecycle import project_deactivate
from routing.selectors import project_described, projects_listed


def _shown_once(key, raw: str) -> Response:
    return Response(selectors.api_key_created(key, raw), status=status.HTTP_201_CREATED)


class ProjectListView(Endpoint, route="projects/"):
    @extend_schema(operation_id="projects_list", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(ListProjectsIn), summary="List projects")
    def get(self, request):
        return Response(projects_listed(request.auth, query(request, ListProjectsIn)))

    @extend_schema(operation_id="project_create", responses=OpenApiTypes.OBJECT,
                   request=ProjectCreateIn, summary="Create a project (operators); returns its first admin key once")
    def post(self, request):
        created = services.project_create(**body(request, ProjectCreateIn).project_fields(), caller=request.auth)
        return Response(selectors.project_created(*created, caller=request.auth), status=status.HTTP_201_CREATED)


class ProjectDetailView(Endpoint, route="projects/<str:project_id>/"):
    @extend_schema(operation_id="project_info", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(ProjectInfoIn), summary="Project info")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id, allow_discoverable=True)
        return Response(project_described(project, request.auth, query(request, ProjectInfoIn)))

    @extend_schema(operation_id="project_update", responses=OpenApiTypes.OBJECT,
                   request=ProjectUpdateIn, summary="Change a project's description or settings (admins)")
    def patch(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        project = services.project_update(project, body(request, ProjectUpdateIn).changes(), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth, include_config=True))


class ProjectDeactivateView(Endpoint, route="projects/<str:project_id>/deactivate/"):
    @extend_schema(operation_id="project_deactivate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Deactivate a project (operators): sessions end, history stays")
    def post(self, request, project_id: str):
        project = project_deactivate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class ProjectActivateView(Endpoint, route="projects/<str:project_id>/activate/"):
    @extend_schema(operation_id="project_activate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Activate a project again (operators)")
    def post(self, request, project_id: str):
        project = services.project_activate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class KeyListView(Endpoint, route="projects/<str:project_id>/keys/"):
    @extend_schema(operation_id="api_keys_list", responses=OpenApiTypes.OBJECT,
                   summary="List a project's keys (admins); never the secrets")
    def get(self, request, project_id: str):
        keys = selectors.api_keys_of(selectors.project_for(request.auth, project_id), request.auth)
        return listing("keys", [selectors.api_key_summary(k) for k in keys])

    @extend_schema(operation_id="api_key_create", responses=OpenApiTypes.OBJECT,
                   request=KeyCreateIn, summary="Create a key (admins); the key is shown once")
    def post(self, request, project_id: str):
        asked = body(request, KeyCreateIn)
        return _shown_once(*services.api_key_create(selectors.project_for(request.auth, project_id), role=asked.role,
                                                    label=asked.label, expires_at=asked.expires_at, caller=request.auth))


class KeyRotateView(Endpoint, route="projects/<str:project_id>/keys/<str:key_id>/rotate/"):
    @extend_schema(operation_id="api_key_rotate", responses=OpenApiTypes.OBJECT,
                   request=KeyRotateIn, summary="Rotate a key: a new key now, the old one valid for the grace period")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        grace = body(request, KeyRotateIn).grace_period_seconds
        [rotation] = services.project_keys_rotate(project, key=selectors.api_key_get(project, key_id),
                                                  grace_period_seconds=grace, caller=request.auth)
        return Response({**selectors.api_key_rotated(rotation), "notice": selectors.SHOWN_ONCE},
                        status=status.HTTP_201_CREATED)


class ProjectKeysRotateView(Endpoint, route="projects/<str:project_id>/keys/rotate/"):
    @extend_schema(operation_id="project_keys_rotate", responses=OpenApiTypes.OBJECT, request=KeyRotateIn,
                   summary="Rotate without naming a key: the calling key if it belongs to this project, else "
                           "(operators) every active key of it; answers {keys: [...]}, each new key shown once")
    def post(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        grace = body(request, KeyRotateIn).grace_period_seconds
        rotations = services.project_keys_rotate(project, grace_period_seconds=grace, caller=request.auth)
        return Response(selectors.api_keys_rotated(project, rotations), status=status.HTTP_201_CREATED)


class KeyRevokeView(Endpoint, route="projects/<str:project_id>/keys/<str:key_id>/revoke/"):
    @extend_schema(operation_id="api_key_revoke", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Revoke a key at once (admins)")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        key = services.api_key_revoke(selectors.api_key_get(project, key_id), caller=request.auth)
        return Response(selectors.api_key_summary(key))


class AuditListView(Endpoint, route="projects/<str:project_id>/audit/"):
    @extend_schema(operation_id="audit_list", responses=OpenApiTypes.OBJECT,
                   summary="The project's audit trail, newest first (admins)")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        return listing("events", selectors.audit_listed(project, request.auth))


# Links between projects: each side's admin consents; the link is addressed by its id.

class LinkListView(Endpoint, route="links/"):
    @extend_schema(operation_id="project_links_list", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(LinkListIn),
                   summary="This project's links and requests, both ways, with terms and traffic (admins; "
                           "operators with all=true: every link)")
    def get(self, request):
        asked = query(request, LinkListIn)
        return Response(selectors.links_listed(request.auth.project, request.auth, state=asked.state,
                                               everyone=asked.all))

    @extend_schema(operation_id="project_link_request", responses={201: OpenApiTypes.OBJECT}, request=LinkRequestIn,
                   summary="Ask another project (by id) to link with this one, on these terms (admins); the "
                           "answer is a pending request whether or not that project exists")
    def post(self, request):
        asked = body(request, LinkRequestIn)
        link = links.link_request(request.auth.project, asked.target_project_id, asked.terms(), caller=request.auth)
        return Response(selectors.link_summary(link, request.auth.project), status=status.HTTP_201_CREATED)


class LinkDetailView(Endpoint, route="links/<str:link_id>/"):
    @extend_schema(operation_id="project_link_get", responses=OpenApiTypes.OBJECT,
                   summary="One link this project is a side of (admins; operators: any link)")
    def get(self, request, link_id: str):
        link = selectors.link_get(request.auth.project, request.auth, link_id)
        return Response(selectors.link_summary(link, request.auth.project))


class LinkAcceptView(Endpoint, route="links/<str:link_id>/accept/"):
    @extend_schema(operation_id="project_link_accept", responses=OpenApiTypes.OBJECT, request=LinkTermsIn,
                   summary="Accept a link this project was asked for (admins); terms given narrow the requested "
                           "ones, never widen them")
    def post(self, request, link_id: str):
        link = links.link_accept(request.auth.project, link_id, body(request, LinkTermsIn).terms(),
                                 caller=request.auth)
        return Response(selectors.link_summary(link, request.auth.project))


class LinkManageView(Endpoint, route="links/<str:link_id>/<str:action>/"):
    # One view for the four changes: the service holds who may make each (links.ACTIONS) and
    # answers an action it does not know with a validation_error naming the choices.
    @extend_schema(operation_id="project_link_manage", responses=OpenApiTypes.OBJECT, request=None,
                   parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=sorted(links.ACTIONS),
                                                description="decline (the asked project, a pending request), "
                                                            "suspend, resume (the side that suspended), revoke")],
                   summary="Decline a request, or suspend, resume or revoke a link, as this project (admins); "
                           "operators may suspend, resume or revoke any link")
    def post(self, request, link_id: str, action: str):
        link = links.link_manage(links.acting_side(request.auth, link_id), link_id, action, caller=request.auth)
        return Response(selectors.link_summary(link, request.auth.project))


urlpatterns = rest_routes(ProjectListView, ProjectDetailView, ProjectDeactivateView, ProjectActivateView,
                          KeyListView, KeyRotateView, ProjectKeysRotateView, KeyRevokeView, AuditListView,
                          LinkListView, LinkDetailView, LinkAcceptView, LinkManageView)
