"""The page django-axes answers with (429) once a username or an address is locked out."""

from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def lockout_response(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """The login page's lockout notice: when to try again, in minutes and as a time.

    Every attempt during the lockout starts it again (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT),
    so the time is counted from now.
    """
    cool_off = settings.AXES_COOLOFF_TIME
    context = {
        "minutes": math.ceil(cool_off.total_seconds() / 60),
        "retry_at": timezone.localtime(timezone.now() + cool_off),
    }
    response = render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
