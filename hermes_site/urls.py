"""HTTP routes: the admin (with the live gateway page), the chat page and health."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

# The demo's admin front page links the gateway's pages; the app itself leaves a project's
# index alone (it links them from its own admin section). This template extends the stock one.
admin.site.index_template = "admin/gateway_app/index.html"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("gateway_app.urls")),
    path("", RedirectView.as_view(pattern_name="gateway_app:chat", permanent=False)),
    # Browsers ask for /favicon.ico on pages that link no icon (the admin's own pages).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("gateway_app/favicon.svg"))),
]
