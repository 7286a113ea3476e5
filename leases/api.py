"""REST face for file leases. Leasing and releasing act as the X-Session-Token's session; listing needs a key."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from broker_site.rest import SESSION_TOKEN_HEADER, Endpoint, acting_session, body, query, query_parameters, rest_routes
from leases import selectors, services
from leases.contracts import LeaseIn, LeaseListIn, ReleaseIn


class LeaseListView(Endpoint, route="leases/"):
    @extend_schema(operation_id="leases_list", responses=OpenApiTypes.OBJECT, parameters=query_parameters(LeaseListIn),
                   summary="File leases held now in the project (those overlapping path, if given)")
    def get(self, request):
        return Response(selectors.leases_listed(request.auth.project, query(request, LeaseListIn)))

    @extend_schema(operation_id="files_lease", request=LeaseIn, responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER],
                   summary="Lease paths (globs) for this session: all granted, or the conflicting holders")
    def post(self, request):
        return Response(services.files_lease(acting_session(request), body(request, LeaseIn)))


class LeaseReleaseView(Endpoint, route="leases/release/"):
    @extend_schema(operation_id="files_release", request=ReleaseIn, responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Release this session's leases (default: all)")
    def post(self, request):
        return Response(services.files_release(acting_session(request), body(request, ReleaseIn)))


urlpatterns = rest_routes(LeaseListView, LeaseReleaseView)
