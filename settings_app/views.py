from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters

from settings_app.connection_test import run_connection_test
from settings_app.forms import OutgoingEmailSettingsForm
from settings_app.history import recent_test_runs, record_test_run
from settings_app.models import ConnectionTestRun, OutgoingEmailSettings

VIEW_PERMISSION = "settings_app.view_outgoingemailsettings"
CHANGE_PERMISSION = "settings_app.change_outgoingemailsettings"


@method_decorator(login_required, name="dispatch")
@method_decorator(sensitive_post_parameters("password", "client_secret"), name="dispatch")
class OutgoingEmailView(View):
    template_name = "settings_app/outgoing_email.html"

    def get(self, request):
        can_change = self._check_access(request)
        settings = OutgoingEmailSettings.load()
        form = OutgoingEmailSettingsForm(
            instance=settings,
            read_only=not can_change,
            initial={"test_recipient": request.session.get("test_recipient", "")},
        )
        return self._render(request, form, settings, can_change)

    def post(self, request):
        if not self._check_access(request):
            raise PermissionDenied
        settings = OutgoingEmailSettings.load()
        form = OutgoingEmailSettingsForm(request.POST, instance=settings)
        if not form.is_valid():
            messages.error(request, "Nothing was saved: correct the fields marked below.")
            return self._render(request, form, settings, True)
        settings = form.save(commit=False)
        settings.updated_by = request.user
        settings.save()
        recipient = form.cleaned_data.get("test_recipient", "")
        request.session["test_recipient"] = recipient
        if request.POST.get("action") != "save_and_test":
            messages.success(request, "Settings saved.")
            return redirect("outgoing_email")
        result = run_connection_test(settings.to_connection_settings(), test_recipient=recipient)
        run = record_test_run(result, settings, user=request.user)
        messages.success(request, "Settings saved. The connection test ran; its result is below.")
        return redirect(f"{reverse('outgoing_email')}?run={run.pk}#connection-test-result")

    @staticmethod
    def _check_access(request) -> bool:
        """Whether the user may change the settings; PermissionDenied if they may not even see them."""
        if request.user.has_perm(CHANGE_PERMISSION):
            return True
        if request.user.has_perm(VIEW_PERMISSION):
            return False
        raise PermissionDenied

    def _render(self, request, form, settings, can_change):
        run_id = request.GET.get("run", "")
        latest = get_object_or_404(ConnectionTestRun, pk=run_id) if run_id.isdigit() else None
        return render(
            request,
            self.template_name,
            {
                "form": form,
                "settings": settings,
                "can_change": can_change,
                "unreadable_secrets": settings.unreadable_secrets(),
                "test_run": latest,
                "history": recent_test_runs(),
            },
        )
