from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from settings_app.health import healthz
from settings_app.metrics import metrics_view

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="outgoing_email", permanent=False)),
    # Browsers ask for /favicon.ico whatever the page links; answer it instead of logging a 404.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.ico"), permanent=True)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("settings/", include("settings_app.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
]
