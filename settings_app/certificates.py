"""Certificates for Entra ID's certificate credential: generated here, or brought as PEM or PKCS#12.

Plain Python in and out (bytes, str, dataclasses); the only module of ours that builds or parses
X.509 with ``cryptography``. Every refusal is a CertificateProblem with a stable ``code`` and a
sentence for the administrator in the active language; a private key never appears in one.
"""

from __future__ import annotations

import base64
import datetime
import socket
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.utils.translation import gettext as _

from settings_app.values import CertificateCredential

KEY_SIZE = 3072
MIN_KEY_SIZE = 2048
DEFAULT_DAYS = 365
MAX_DAYS = 730
PRODUCT = "mailadmin"


class CertificateProblem(ValueError):
    """An uploaded or requested certificate cannot be used; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CertificateInfo:
    """What the page shows of a certificate: never the key."""

    thumbprint: str
    thumbprint_sha256: str
    subject: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    def days_left(self, today: datetime.date) -> int:
        return (self.not_after.date() - today).days


@dataclass(frozen=True)
class CertificateBundle:
    """A certificate with its unencrypted PKCS#8 private key, both PEM text."""

    certificate: str
    private_key: str = field(repr=False)
    info: CertificateInfo

    @property
    def thumbprint(self) -> str:
        return self.info.thumbprint

    def credential(self) -> CertificateCredential:
        return CertificateCredential(
            private_key=self.private_key,
            certificate=self.certificate,
            thumbprint=self.info.thumbprint,
            not_after=self.info.not_after,
        )


def default_host() -> str:
    return socket.getfqdn() or socket.gethostname() or "localhost"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint as the Azure portal lists it: upper-case hex, no separators."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra ID names certificates by it


def x5t(thumbprint_hex: str) -> str:
    """A hex thumbprint as a JWT ``x5t`` / ``x5t#S256`` header (base64url, no padding)."""
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint_hex)).rstrip(b"=").decode("ascii")


def describe(certificate_pem: str) -> CertificateInfo:
    """The shown facts of a PEM certificate; raises CertificateProblem if it is not one."""
    return _info(_load_certificate(certificate_pem.encode()))


def _info(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        thumbprint=thumbprint(certificate),
        thumbprint_sha256=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def generate(days: int = DEFAULT_DAYS, host: str = "") -> CertificateBundle:
    """A new RSA 3072 key and a self-signed SHA-256 certificate valid for ``days`` (1 to MAX_DAYS)."""
    if not 1 <= days <= MAX_DAYS:
        raise CertificateProblem("validity", _("The validity must be between 1 and %(max)s days.") % {"max": MAX_DAYS})
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{PRODUCT} outgoing email on {host or default_host()}"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, PRODUCT),
        ]
    )
    now = _utcnow().replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _bundle(certificate, key)


def load_pem(certificate_data: bytes, key_data: bytes = b"", passphrase: str = "") -> CertificateBundle:
    """A PEM certificate with its PEM private key (in ``key_data``, or in the same file)."""
    certificate = _load_certificate(certificate_data)
    key_source = key_data or certificate_data
    if b"PRIVATE KEY-----" not in key_source:
        raise CertificateProblem("key-missing", _("Upload the certificate's private key (PEM) too."))
    try:
        key = serialization.load_pem_private_key(key_source, password=passphrase.encode() or None)
    except TypeError:
        if passphrase:
            raise CertificateProblem(
                "key-not-encrypted", _("The private key is not encrypted: leave the passphrase empty.")
            ) from None
        raise CertificateProblem(
            "passphrase-needed", _("The private key is encrypted: enter its passphrase.")
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if passphrase:
            raise CertificateProblem("passphrase-wrong", _("The passphrase does not open this private key.")) from None
        raise CertificateProblem("key-invalid", _("The private key file is not a PEM private key.")) from None
    return _checked(certificate, key)


def load_pkcs12(data: bytes, passphrase: str = "") -> CertificateBundle:
    """A PKCS#12 (.pfx) file holding a certificate and its private key."""
    try:
        key, certificate, _chain = pkcs12.load_key_and_certificates(data, passphrase.encode() or None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if passphrase:
            raise CertificateProblem(
                "passphrase-wrong", _("The passphrase does not open this .pfx file, or it is not a PKCS#12 file.")
            ) from None
        raise CertificateProblem(
            "passphrase-needed",
            _(
                "The file is not a PEM certificate, and as a .pfx (PKCS#12) file it does not open without a "
                "passphrase: enter the passphrase, or upload a PEM certificate."
            ),
        ) from None
    if certificate is None or key is None:
        raise CertificateProblem(
            "pfx-incomplete", _("The .pfx file must hold both the certificate and its private key.")
        )
    return _checked(certificate, key)


def load_upload(certificate_data: bytes, key_data: bytes = b"", passphrase: str = "") -> CertificateBundle:
    """A PEM certificate (with its key) or a PKCS#12 file, told apart by their content."""
    if b"-----BEGIN" in certificate_data:
        return load_pem(certificate_data, key_data, passphrase)
    return load_pkcs12(certificate_data, passphrase)


def _load_certificate(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CertificateProblem("certificate-invalid", _("The file is not a PEM or DER X.509 certificate.")) from None


def _checked(certificate: x509.Certificate, key) -> CertificateBundle:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateProblem(
            "key-type", _("Entra ID accepts client assertions signed with RSA only: use an RSA key.")
        )
    if key.key_size < MIN_KEY_SIZE:
        raise CertificateProblem(
            "key-size", _("The RSA key has %(bits)s bits; Entra ID needs at least 2048.") % {"bits": key.key_size}
        )
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise CertificateProblem(
            "key-mismatch", _("The private key does not belong to this certificate: upload the key it was issued for.")
        )
    now = _utcnow()
    if certificate.not_valid_after_utc <= now:
        raise CertificateProblem(
            "expired",
            _("The certificate expired on %(date)s.") % {"date": f"{certificate.not_valid_after_utc:%Y-%m-%d}"},
        )
    if certificate.not_valid_before_utc > now + datetime.timedelta(minutes=5):
        raise CertificateProblem(
            "not-yet-valid",
            _("The certificate is valid only from %(date)s UTC.")
            % {"date": f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M}"},
        )
    return _bundle(certificate, key)


def _bundle(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> CertificateBundle:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return CertificateBundle(
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        private_key=key_pem,
        info=_info(certificate),
    )
