"""The application's credential over the saved settings: installing and rotating certificates,
and what the page shows of each credential (never a private key, never an assertion).

Rotation without an outage: a certificate generated or uploaded while one is in use becomes the
*pending* certificate. The email backend keeps using the active one; Save and test tries the
pending one, and only a passing test promotes it (``promote_if_proven``).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings as django_settings
from django.db import transaction

from settings_app import assertions, certificates
from settings_app.audit import record_change, snapshot
from settings_app.models import CredentialType, OutgoingEmailSettings
from settings_app.values import CertificateCredential, ConnectionSettings


def certificate_in_use(record: OutgoingEmailSettings) -> bool:
    """Whether the saved settings authenticate with a certificate now (a new one must wait its turn)."""
    return record.credential_type == CredentialType.CERTIFICATE and bool(record.certificate)


def install_certificate(record: OutgoingEmailSettings, bundle: certificates.CertificateBundle, *, in_use: bool) -> str:
    """Put ``bundle`` on ``record`` (not saved): "pending" when a certificate is ``in_use``, else "active"."""
    if in_use:
        record.pending_certificate = bundle.certificate
        record.pending_certificate_key = bundle.private_key
        record.pending_certificate_thumbprint = bundle.thumbprint
        return "pending"
    record.certificate = bundle.certificate
    record.certificate_key = bundle.private_key
    record.certificate_thumbprint = bundle.thumbprint
    _clear_pending(record)
    return "active"


def generate_and_install(days: int, user=None) -> tuple[certificates.CertificateBundle, str]:
    """What the Generate certificate button does, outside a form: a new certificate, saved as the active
    one or (while one is in use) the pending one, with an audit entry. Returns it and "active"/"pending"."""
    bundle = certificates.generate(days)
    OutgoingEmailSettings.load()
    with transaction.atomic():
        record = OutgoingEmailSettings.objects.select_for_update().get(pk=OutgoingEmailSettings.SINGLETON_PK)
        before = snapshot(record)
        installed_as = install_certificate(record, bundle, in_use=certificate_in_use(record))
        record.save()
        record_change(before, record, user)
    return bundle, installed_as


def _clear_pending(record: OutgoingEmailSettings) -> None:
    record.pending_certificate = ""
    record.pending_certificate_key = ""
    record.pending_certificate_thumbprint = ""


def settings_to_test(record: OutgoingEmailSettings) -> ConnectionSettings:
    """What Save and test tries: the pending certificate when there is one, else what the backend uses."""
    return record.to_connection_settings(pending=True)


def promote_if_proven(tested: ConnectionSettings, passed: bool, user=None) -> bool:
    """After a test of ``tested``: when it passed with the pending certificate, that one becomes active."""
    credential = tested.credential
    if not passed or not isinstance(credential, CertificateCredential) or not credential.thumbprint:
        return False
    with transaction.atomic():
        record = OutgoingEmailSettings.objects.select_for_update().filter(pk=OutgoingEmailSettings.SINGLETON_PK).first()
        if record is None or record.pending_certificate_thumbprint != credential.thumbprint:
            return False
        before = snapshot(record)
        record.certificate = record.pending_certificate
        record.certificate_key = record.pending_certificate_key
        record.certificate_thumbprint = record.pending_certificate_thumbprint
        _clear_pending(record)
        if user is not None and user.is_authenticated:
            record.updated_by = user
        record.save()
        record_change(before, record, user)
    return True


def discard_pending(record: OutgoingEmailSettings) -> bool:
    """Forget the pending certificate (not saved); False when there was none."""
    if not record.pending_certificate:
        return False
    _clear_pending(record)
    return True


@dataclass(frozen=True)
class CertificateStatus:
    role: str
    info: certificates.CertificateInfo
    days_left: int

    @property
    def expired(self) -> bool:
        return self.days_left < 0


@dataclass(frozen=True)
class FederatedStatus:
    """The token file and what its assertion says now, or why there is none (``problem``, a code)."""

    token_file: str
    claims: assertions.AssertionClaims | None = None
    problem: str = ""
    problem_text: str = ""

    @property
    def audience_to_register(self) -> str:
        return (self.claims.audience if self.claims else "") or assertions.DEFAULT_AUDIENCE


@dataclass(frozen=True)
class CredentialStatus:
    active: CertificateStatus | None
    pending: CertificateStatus | None
    federated: FederatedStatus


def credential_status(record: OutgoingEmailSettings, today: datetime.date) -> CredentialStatus:
    """What the page shows of the certificates (active and pending) and the federated assertion."""
    return CredentialStatus(
        active=_certificate_status("active", record.certificate, today),
        pending=_certificate_status("pending", record.pending_certificate, today),
        federated=federated_status(),
    )


def _certificate_status(role: str, pem: str, today: datetime.date) -> CertificateStatus | None:
    if not pem:
        return None
    try:
        info = certificates.describe(pem)
    except certificates.CertificateProblem:
        return None
    return CertificateStatus(role, info, info.days_left(today))


def federated_status() -> FederatedStatus:
    token_file = django_settings.MAILADMIN_FEDERATED_TOKEN_FILE
    try:
        claims = assertions.inspect(token_file)
    except assertions.AssertionUnavailable as exc:
        return FederatedStatus(token_file, problem=exc.code, problem_text=exc.message)
    return FederatedStatus(token_file, claims)


def public_certificate(record: OutgoingEmailSettings, which: str = "") -> tuple[str, str] | None:
    """(PEM, thumbprint) of the pending certificate (the one to upload next), or of the active one
    (``which="active"``, or when none is pending); None when there is none."""
    if which != "active" and record.pending_certificate:
        return record.pending_certificate, record.pending_certificate_thumbprint
    if record.certificate:
        return record.certificate, record.certificate_thumbprint
    return None
