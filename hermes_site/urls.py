"""HTTP routes: the admin (with the live gateway page), the chat page and health."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("gateway_app.urls")),
    path("", RedirectView.as_view(pattern_name="gateway_app:chat", permanent=False)),
]
