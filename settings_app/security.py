"""The Content-Security-Policy header, which Django 5.2's SecurityMiddleware does not set.

The panel's pages load only their own scripts and style sheets: no inline script,
no inline style attribute, no event handler attribute. Bootstrap's JavaScript
changes styles through the CSSOM (``element.style``), which the policy allows, and
its CSS draws icons from ``data:`` images.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.debug import SafeExceptionReporterFilter

from settings_app import crypto

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Adds CONTENT_SECURITY_POLICY to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class KeyConfigurationMiddleware:
    """An unusable encryption key configuration answers 503 with what to fix, not a 500 page.

    The message names the variable or the file, never a key.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, crypto.KeyConfigurationError):
            return None
        logger.error("The encryption key configuration is unusable: %s", exception)
        return render(request, "settings_app/key_problem.html", {"problem": str(exception)}, status=503)


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Masks sensitive_variables and sensitive_post_parameters on the debug page too.

    Django's filter only masks with DEBUG off; with DJANGO_DEBUG=1 its page would show a
    decrypted secret held in a local variable.
    """

    def is_active(self, request: HttpRequest | None) -> bool:
        return True
