"""HTTP routes of the gateway app: the chat page and the health check."""

from django.urls import path

from .dashboard import views

app_name = "gateway_app"

urlpatterns = [
    path("chat/", views.chat, name="chat"),
    path("healthz", views.healthz, name="healthz"),
]
