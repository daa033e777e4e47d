"""settings_app.certificates: generating, reading uploads, and every refusal as a stable code."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from settings_app import certificates
from settings_app.certificates import CertificateProblem
from tests.fakes import pki


def problem(call, *args) -> str:
    with pytest.raises(CertificateProblem) as caught:
        call(*args)
    return caught.value.code


def test_it_generates_rsa_3072_and_a_self_signed_sha256_certificate():
    bundle = certificates.generate(90, host="mail.example.com")
    cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
    key = serialization.load_pem_private_key(bundle.private_key.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    assert cert.signature_hash_algorithm.name == "sha256"
    assert cert.issuer == cert.subject
    assert "mailadmin" in bundle.info.subject and "mail.example.com" in bundle.info.subject
    assert (cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).days in (89, 90)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_the_thumbprint_is_the_sha1_hex_the_azure_portal_lists():
    bundle = certificates.generate(30)
    der = x509.load_pem_x509_certificate(bundle.certificate.encode()).public_bytes(serialization.Encoding.DER)
    assert bundle.thumbprint == hashlib.sha1(der).hexdigest().upper()
    assert bundle.info.thumbprint_sha256 == hashlib.sha256(der).hexdigest().upper()
    assert len(certificates.x5t(bundle.thumbprint)) == 27 and "=" not in certificates.x5t(bundle.thumbprint)


@pytest.mark.parametrize("days", [0, -1, 731])
def test_a_validity_outside_one_day_to_two_years_is_refused(days):
    assert problem(certificates.generate, days) == "validity"


def test_the_private_key_is_not_in_the_bundles_repr():
    bundle = certificates.generate(30)
    assert "PRIVATE KEY" not in repr(bundle) and "PRIVATE KEY" not in repr(bundle.credential())


def test_a_pem_certificate_and_key_are_read():
    issued = pki.issue()
    bundle = certificates.load_upload(issued.certificate.encode(), issued.private_key.encode())
    assert bundle.thumbprint == issued.cert.fingerprint(hashes.SHA1()).hex().upper()
    assert bundle.certificate.strip() == issued.certificate.strip()


def test_one_pem_file_holding_both_is_read():
    issued = pki.issue()
    assert certificates.load_upload((issued.certificate + issued.private_key).encode()).thumbprint


def test_an_encrypted_pem_key_needs_its_passphrase():
    issued = pki.issue()
    encrypted = issued.encrypted_key("correct horse").encode()
    assert problem(certificates.load_pem, issued.certificate.encode(), encrypted) == "passphrase-needed"
    assert problem(certificates.load_pem, issued.certificate.encode(), encrypted, "wrong") == "passphrase-wrong"
    bundle = certificates.load_pem(issued.certificate.encode(), encrypted, "correct horse")
    assert "ENCRYPTED" not in bundle.private_key


def test_a_pfx_is_read_with_its_passphrase():
    issued = pki.issue()
    assert certificates.load_upload(issued.pfx("s3cret"), b"", "s3cret").thumbprint
    assert certificates.load_upload(issued.pfx()).thumbprint
    assert problem(certificates.load_upload, issued.pfx("s3cret"), b"", "wrong") == "passphrase-wrong"
    assert problem(certificates.load_upload, issued.pfx("s3cret")) == "passphrase-needed"


def test_a_key_of_another_certificate_is_refused():
    one, other = pki.issue(), pki.issue()
    assert problem(certificates.load_pem, one.certificate.encode(), other.private_key.encode()) == "key-mismatch"


def test_an_expired_or_future_certificate_is_refused():
    expired = pki.issue(valid_from_days=-30, valid_for_days=10)
    future = pki.issue(valid_from_days=3)
    assert problem(certificates.load_pem, expired.certificate.encode(), expired.private_key.encode()) == "expired"
    assert problem(certificates.load_pem, future.certificate.encode(), future.private_key.encode()) == "not-yet-valid"


def test_keys_entra_cannot_use_are_refused():
    ec_key = pki.issue(key_type="ec")
    small = pki.issue(key_size=1024)
    assert problem(certificates.load_pem, ec_key.certificate.encode(), ec_key.private_key.encode()) == "key-type"
    assert problem(certificates.load_pem, small.certificate.encode(), small.private_key.encode()) == "key-size"


def test_garbage_is_refused_with_a_code():
    issued = pki.issue()
    assert problem(certificates.load_upload, b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n") == (
        "certificate-invalid"
    )
    assert problem(certificates.load_upload, b"\x00\x01 not a pfx") == "passphrase-needed"
    assert problem(certificates.load_pem, issued.certificate.encode()) == "key-missing"
    garbage_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    assert problem(certificates.load_pem, issued.certificate.encode(), garbage_key) == "key-invalid"
