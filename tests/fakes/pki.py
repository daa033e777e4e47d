"""Certificates an organisation's own PKI would hand out, for upload tests: PEM, PKCS#12, odd ones."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Issued:
    certificate: str
    private_key: str = field(repr=False)
    key: object = field(repr=False)
    cert: x509.Certificate = field(repr=False)

    def pfx(self, passphrase: str = "") -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(b"mailadmin", self.key, self.cert, None, encryption)

    def encrypted_key(self, passphrase: str) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        ).decode()


def issue(
    *, valid_from_days: int = -1, valid_for_days: int = 365, key_type: str = "rsa", key_size: int = 2048
) -> Issued:
    """A self-signed certificate valid from ``valid_from_days`` (relative to now) for ``valid_for_days``."""
    key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else rsa.generate_private_key(65537, key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Contoso PKI mail client")])
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=valid_from_days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_for_days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, key, cert)
