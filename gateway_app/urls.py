"""HTTP routes of the gateway app: the chat page, its logout, the health check and the
Prometheus metrics."""

from django.urls import path

from .dashboard import views
from .metrics import views as metrics_views

app_name = "gateway_app"

urlpatterns = [
    path("chat/", views.chat, name="chat"),
    path("logout/", views.ChatLogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_views.metrics, name="metrics"),
]
