from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from broker_site import health, metrics, overview

admin.site.site_header = "MCP Broker"
admin.site.site_title = "MCP Broker"
admin.site.index_title = "Operators' dashboard"

api_v1 = [
    path("", include("projects.api")),
    path("", include("protocols.api")),
    path("", include("sessions_app.api")),
    path("", include("routing.api")),
    path("", include("leases.api")),
]

urlpatterns = [
    path("admin/broker/", include(overview)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[],
                                                     permission_classes=[]), name="api-docs"),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics.metrics),
]

handler404 = "broker_site.health.api_not_found"
handler500 = "broker_site.health.server_error"
