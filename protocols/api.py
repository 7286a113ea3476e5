"""REST face for protocols, their adapters, and negotiation."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from broker_site.rest import Endpoint, acting_session, body, query, query_parameters, rest_routes
from protocols import negotiation, selectors, services, transform
from protocols.contracts import (
    AdapterIn,
    DiscoverIn,
    MatrixIn,
    NegotiateRestIn,
    ProtocolQueryIn,
    RegisterIn,
    TransformIn,
)
from sessions_app.selectors import session_get


def _tags_param(raw: str) -> list[str]:
    return [tag.strip() for tag in raw.split(",") if tag.strip()]


class ProtocolListView(Endpoint, route="protocols/"):
    @extend_schema(parameters=query_parameters(DiscoverIn),
                   summary="Discover protocols: this project's, and with include_shared others' shared ones "
                           "(tags comma-separated, all must match)",
                   operation_id="protocols_discover", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        tags = request.query_params.get("tags")
        found = query(request, DiscoverIn, **({"tags": _tags_param(tags)} if tags is not None else {}))
        return Response(selectors.protocols_found(request.auth.project, found))

    @extend_schema(request=RegisterIn, summary="Register a protocol version with its JSON Schema",
                   operation_id="protocol_register", responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = body(request, RegisterIn).model_dump(by_alias=True)
        protocol = services.protocol_register(request.auth.project, request.auth, **data)
        return Response(selectors.protocol_summary(protocol, request.auth.project), status=status.HTTP_201_CREATED)


class ProtocolDetailView(Endpoint, route="protocols/<str:name>/<str:version>/"):
    @extend_schema(parameters=query_parameters(ProtocolQueryIn), summary="One protocol version",
                   operation_id="protocol_get", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, version: str):
        protocol = selectors.protocol_get(request.auth.project, name, version,
                                          include_shared=query(request, ProtocolQueryIn).include_shared)
        return Response(selectors.protocol_summary(protocol, request.auth.project))

    @extend_schema(request=None, summary="Delete a protocol version (admins or its author), unless a live session uses it",
                   operation_id="protocol_delete", responses={200: OpenApiTypes.OBJECT})
    def delete(self, request, name: str, version: str):
        services.protocol_delete(request.auth.project, request.auth, name, version)
        return Response({"deleted": True, "name": name, "version": version})


class AdapterListView(Endpoint, route="protocols/<str:name>/adapters/"):
    @extend_schema(summary="This project's adapters of a protocol", operation_id="protocol_adapters_list",
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str):
        found = selectors.adapters_of(request.auth.project, name)
        body = {"adapters": [selectors.adapter_summary(a) for a in found], "count": len(found)}
        if not found:
            body["message"] = f"No adapters of {name[:100]} in this project."
        return Response(body)

    @extend_schema(request=AdapterIn, summary="Register a declarative adapter between two versions (admins)",
                   operation_id="protocol_adapter_register", responses={201: OpenApiTypes.OBJECT})
    def post(self, request, name: str):
        data = body(request, AdapterIn).model_dump()
        adapter = services.adapter_register(request.auth.project, request.auth, protocol_name=name, **data)
        return Response(selectors.adapter_summary(adapter), status=status.HTTP_201_CREATED)


class AdapterDetailView(Endpoint, route="protocols/<str:name>/adapters/<uuid:adapter_id>/"):
    @extend_schema(request=None, summary="Delete a protocol adapter (admins)", operation_id="protocol_adapter_delete",
                   responses={200: OpenApiTypes.OBJECT})
    def delete(self, request, name: str, adapter_id):
        adapter = services.adapter_delete(request.auth.project, request.auth, adapter_id, protocol_name=name)
        return Response({"deleted": True, "id": str(adapter.pk), "protocol_name": adapter.protocol_name,
                         "from_version": adapter.from_version, "to_version": adapter.to_version})


class TransformView(Endpoint, route="protocols/<str:name>/<str:version>/transform/"):
    @extend_schema(request=TransformIn, summary="Dry run: what a payload of this version becomes at target_version",
                   operation_id="protocol_transform", responses={200: OpenApiTypes.OBJECT})
    def post(self, request, name: str, version: str):
        dry_run = body(request, TransformIn)
        return Response(transform.transform_preview(request.auth.project, name, version, dry_run.payload,
                                                    dry_run.target_version))


class NegotiateView(Endpoint, route="negotiate/"):
    @extend_schema(request=NegotiateRestIn, summary="Negotiate protocols and features between two sessions",
                   operation_id="negotiate", responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        asked = body(request, NegotiateRestIn)
        project = request.auth.project
        # Naming the source is a read about it; acting as it (the token) is a call of its own, and a heartbeat.
        source = session_get(project, asked.session_id) if asked.session_id else acting_session(request)
        return Response(selectors.negotiated(source, asked.target_session_id, asked.required_protocols))


class MatrixView(Endpoint, route="negotiate/matrix/"):
    @extend_schema(request=MatrixIn, summary="Compatibility of every pair among 2 to 50 sessions",
                   operation_id="negotiate_matrix", responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        sessions = selectors.matrix_sessions(request.auth.project, body(request, MatrixIn).session_ids)
        return Response(negotiation.compatibility_matrix(sessions))


# The adapter routes before the detail route, whose <version> would otherwise take "adapters".
urlpatterns = rest_routes(ProtocolListView, AdapterListView, AdapterDetailView, TransformView, ProtocolDetailView,
                          NegotiateView, MatrixView)
