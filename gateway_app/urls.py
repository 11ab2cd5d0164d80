"""HTTP routes of the gateway app: the chat page, its logout and the health check."""

from django.urls import path

from .dashboard import views

app_name = "gateway_app"

urlpatterns = [
    path("chat/", views.chat, name="chat"),
    path("logout/", views.ChatLogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
]
