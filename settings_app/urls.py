from django.urls import path

from settings_app import views

urlpatterns = [
    path("outgoing-email/", views.OutgoingEmailView.as_view(), name="outgoing_email"),
    path("outgoing-email/setup/", views.SetupGuideView.as_view(), name="setup_guide"),
    path("outgoing-email/certificate.pem", views.CertificateDownloadView.as_view(), name="certificate_pem"),
]
