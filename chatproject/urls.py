"""URL map: the versioned JSON API, its schema and docs, health probes, admin."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import Resolver404, include, path, re_path, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("tasks.urls")),
    path("", include("chat.urls")),
]


@csrf_exempt
def api_not_found(request):
    """A JSON 404 for a path under /api/ that no route matches."""
    detail = "Not found."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != "api-404":
            detail = f"Not found. Paths end with a slash: {request.path}/"
    return JsonResponse({"detail": detail}, status=404)


urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # Last: any other path under /api/ is a JSON 404, also with DEBUG on (Django's
    # debug 404 page would be HTML) and for a path missing its final slash (which
    # APPEND_SLASH would redirect, or with DEBUG refuse with an HTML 500 for a POST).
    re_path(r"^api/", api_not_found, name="api-404"),
]


def _is_api(request):
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


def handler400(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)
