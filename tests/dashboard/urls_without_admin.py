"""A host project's URLconf without django.contrib.admin: the gateway under /gateway/."""

from django.urls import include, path

urlpatterns = [path("gateway/", include("gateway_app.urls"))]
