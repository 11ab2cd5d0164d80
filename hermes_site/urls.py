"""HTTP routes: the admin (with the live gateway page), the chat page and health."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
