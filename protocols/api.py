"""REST face for protocols, their adapters, and negotiation."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_site.errors import ValidationFailed
from broker_site.rest import StrictSerializer, query_flag
from protocols import negotiation, selectors, services, transform
from protocols.models import CAPABILITIES
from sessions_app.selectors import session_by_token, session_get


class ProtocolRegisterIn(StrictSerializer):
    # Types only here; the rules (snake_case, semver, schema validity, limits) live in the service
    # so the MCP tool enforces exactly the same ones.
    name = serializers.CharField(max_length=100)
    version = serializers.CharField(max_length=32)
    schema = serializers.JSONField()
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=CAPABILITIES), required=False,
                                         allow_empty=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    shared = serializers.BooleanField(required=False, default=False)


class NegotiateIn(StrictSerializer):
    session_id = serializers.CharField(max_length=100, required=False,
                                       help_text="source session id or name; default: the X-Session-Token session")
    target_session_id = serializers.CharField(max_length=100, help_text="target session id or name")
    required_protocols = serializers.ListField(
        child=serializers.JSONField(), required=False, max_length=negotiation.MAX_REQUIRED,
        help_text='protocol names, or {"name": ..., "version_range": ">=1.0.0,<2.0.0"} objects')


class MatrixIn(StrictSerializer):
    session_ids = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False,
        min_length=negotiation.MATRIX_MIN, max_length=negotiation.MATRIX_MAX,
        help_text="session ids or names; default: the project's live sessions (at most 50)")


class AdapterRegisterIn(StrictSerializer):
    # Types only; the operation rules live in transform.operations_check via the service.
    from_version = serializers.CharField(max_length=32)
    to_version = serializers.CharField(max_length=32)
    operations = serializers.JSONField(
        help_text='[{"op": "rename", "from": "a", "to": "b"} | {"op": "drop", "field": "a"} '
                  '| {"op": "set_default", "field": "a", "value": ...}]; fields may be dotted paths such as meta.by')


class TransformIn(StrictSerializer):
    payload = serializers.JSONField(help_text="a payload of the protocol version in the path")
    target_version = serializers.CharField(max_length=32)


def _tags_param(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [tag.strip() for tag in raw.split(",") if tag.strip()]


class ProtocolListView(APIView):
    @extend_schema(parameters=[OpenApiParameter("name", str), OpenApiParameter("version_range", str,
                                                                                description=">=1.0.0,<2.0.0"),
                               OpenApiParameter("tags", str, description="comma-separated; all must match"),
                               OpenApiParameter("include_shared", bool)],
                   summary="Discover protocols: this project's, and with include_shared others' shared ones",
                   operation_id="protocols_discover", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        project = request.auth.project
        name = request.query_params.get("name") or None
        if name is not None and len(name) > 100:
            raise ValidationFailed("name is at most 100 characters.", field="name", max_length=100)
        found = selectors.protocols_discover(
            project, name=name, version_range=request.query_params.get("version_range") or None,
            tags=_tags_param(request.query_params.get("tags")),
            include_shared=query_flag(request, "include_shared"))
        body = {"protocols": [selectors.protocol_summary(p, project) for p in found], "count": len(found)}
        if not found:
            body["message"] = "No protocols match these filters."
        return Response(body)

    @extend_schema(request=ProtocolRegisterIn, summary="Register a protocol version with its JSON Schema",
                   operation_id="protocol_register", responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = ProtocolRegisterIn.validated(request.data)
        protocol = services.protocol_register(request.auth.project, request.auth, **data)
        return Response(selectors.protocol_summary(protocol, request.auth.project), status=status.HTTP_201_CREATED)


class ProtocolDetailView(APIView):
    @extend_schema(parameters=[OpenApiParameter("include_shared", bool)], summary="One protocol version",
                   operation_id="protocol_get", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str, version: str):
        protocol = selectors.protocol_get(request.auth.project, name, version,
                                          include_shared=query_flag(request, "include_shared"))
        return Response(selectors.protocol_summary(protocol, request.auth.project))

    @extend_schema(request=None, summary="Delete a protocol version (admins or its author), unless a live session uses it",
                   operation_id="protocol_delete", responses={200: OpenApiTypes.OBJECT})
    def delete(self, request, name: str, version: str):
        services.protocol_delete(request.auth.project, request.auth, name, version)
        return Response({"deleted": True, "name": name, "version": version})


class AdapterListView(APIView):
    @extend_schema(summary="This project's adapters of a protocol", operation_id="protocol_adapters_list",
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, name: str):
        found = selectors.adapters_of(request.auth.project, name)
        body = {"adapters": [selectors.adapter_summary(a) for a in found], "count": len(found)}
        if not found:
            body["message"] = f"No adapters of {name[:100]} in this project."
        return Response(body)

    @extend_schema(request=AdapterRegisterIn, summary="Register a declarative adapter between two versions (admins)",
                   operation_id="protocol_adapter_register", responses={201: OpenApiTypes.OBJECT})
    def post(self, request, name: str):
        data = AdapterRegisterIn.validated(request.data)
        adapter = services.adapter_register(request.auth.project, request.auth, protocol_name=name, **data)
        return Response(selectors.adapter_summary(adapter), status=status.HTTP_201_CREATED)


class AdapterDetailView(APIView):
    @extend_schema(request=None, summary="Delete a protocol adapter (admins)", operation_id="protocol_adapter_delete",
                   responses={200: OpenApiTypes.OBJECT})
    def delete(self, request, name: str, adapter_id):
        adapter = services.adapter_delete(request.auth.project, request.auth, adapter_id, protocol_name=name)
        return Response({"deleted": True, "id": str(adapter.pk), "protocol_name": adapter.protocol_name,
                         "from_version": adapter.from_version, "to_version": adapter.to_version})


class TransformView(APIView):
    @extend_schema(request=TransformIn, summary="Dry run: what a payload of this version becomes at target_version",
                   operation_id="protocol_transform", responses={200: OpenApiTypes.OBJECT})
    def post(self, request, name: str, version: str):
        data = TransformIn.validated(request.data)
        return Response(transform.transform_preview(request.auth.project, name, version, data["payload"],
                                                    data["target_version"]))


class NegotiateView(APIView):
    @extend_schema(request=NegotiateIn, summary="Negotiate protocols and features between two sessions",
                   operation_id="negotiate", responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        data = NegotiateIn.validated(request.data)
        project = request.auth.project
        if data.get("session_id"):
            source = session_get(project, data["session_id"])
        else:
            source = session_by_token(project, request.headers.get("X-Session-Token"))
        target = session_get(project, data["target_session_id"])
        return Response(negotiation.negotiate(source, target, data.get("required_protocols")))


class MatrixView(APIView):
    @extend_schema(request=MatrixIn, summary="Compatibility of every pair among 2 to 50 sessions",
                   operation_id="negotiate_matrix", responses={200: OpenApiTypes.OBJECT})
    def post(self, request):
        data = MatrixIn.validated(request.data)
        sessions = selectors.matrix_sessions(request.auth.project, data.get("session_ids"))
        return Response(negotiation.compatibility_matrix(sessions))


urlpatterns = [
    path("protocols/", ProtocolListView.as_view()),
    # Before the detail route, whose <version> would otherwise take "adapters".
    path("protocols/<str:name>/adapters/", AdapterListView.as_view()),
    path("protocols/<str:name>/adapters/<uuid:adapter_id>/", AdapterDetailView.as_view()),
    path("protocols/<str:name>/<str:version>/transform/", TransformView.as_view()),
    path("protocols/<str:name>/<str:version>/", ProtocolDetailView.as_view()),
    path("negotiate/", NegotiateView.as_view()),
    path("negotiate/matrix/", MatrixView.as_view()),
]
