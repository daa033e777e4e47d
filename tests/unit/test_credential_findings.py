"""The findings of the certificate and federated credentials, filled with the administrator's values (pure)."""

from __future__ import annotations

import datetime
import time

import jwt
import pytest

from settings_app.diagnosis import SetupValues, diagnose
from settings_app.setup_guide import guide_steps
from settings_app.values import CertificateCredential, ConnectionSettings, FederatedAssertion

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
THUMBPRINT = "0123456789ABCDEF0123456789ABCDEF01234567"
ISSUER = "https://oidc.prod-aks.azure.com/tenant-guid/"
SUBJECT = "system:serviceaccount:mail:mailadmin"


def m365(credential) -> ConnectionSettings:
    return ConnectionSettings(
        protocol="smtp_microsoft365",
        server="smtp.office365.com",
        port=587,
        connection_security="starttls",
        use_secure_auth=True,
        username="noreply@contoso.com",
        sender_email="noreply@contoso.com",
        client_id=CLIENT_ID,
        tenant_id="contoso.onmicrosoft.com",
        credential=credential,
    )


def certificate(days: int = 30) -> CertificateCredential:
    not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return CertificateCredential("key", "cert", THUMBPRINT, not_after)


@pytest.fixture
def federated(tmp_path) -> FederatedAssertion:
    path = tmp_path / "token"
    claims = {"iss": ISSUER, "sub": SUBJECT, "aud": ["api://AzureADTokenExchange"], "exp": int(time.time()) + 60}
    path.write_text(jwt.encode(claims, "k" * 32, algorithm="HS256"))
    return FederatedAssertion(str(path))


def text(finding) -> str:
    return "\n".join([finding.title, finding.explanation, *finding.causes, *(fix.text for fix in finding.fixes)])


def test_700027_shows_the_thumbprint_we_used_and_what_to_upload():
    finding = diagnose("token", "AADSTS700027", "The key was not found.", m365(certificate()))
    assert THUMBPRINT in text(finding) and CLIENT_ID in text(finding)
    assert "Certificates & secrets > Certificates > Upload certificate" in text(finding)
    assert finding.guide_step == "certificate"


def test_700027_says_when_entra_found_the_key_expired():
    finding = diagnose("token", "AADSTS700027", "AADSTS700027: The key used is expired.", m365(certificate()))
    assert "expired" in finding.title


def test_700024_points_at_the_clock():
    assert "clock" in diagnose("token", "AADSTS700024", "", m365(certificate())).title


def test_700021_names_the_client_id():
    assert CLIENT_ID in text(diagnose("token", "AADSTS700021", "", m365(certificate())))


@pytest.mark.parametrize("code", ["AADSTS700211", "AADSTS700212", "AADSTS700213", "AADSTS70021"])
def test_federated_mismatches_name_the_three_values_to_register(code, federated):
    finding = diagnose("token", code, "", m365(federated))
    assert f"Issuer {ISSUER}, Subject identifier {SUBJECT}, Audience api://AzureADTokenExchange" in text(finding)
    assert "Federated credentials" in text(finding)
    assert finding.guide_step == "federated-credential"


def test_5002738_names_the_algorithm(federated):
    assert "HS256" in text(diagnose("token", "AADSTS5002738", "", m365(federated)))


def test_an_expired_certificate_on_our_side_names_it():
    finding = diagnose("token", "certificate-expired", "", m365(certificate(-2)))
    assert THUMBPRINT in finding.explanation and finding.guide_step == "certificate"


@pytest.mark.parametrize(
    "code",
    [
        "federated-token-not-configured",
        "federated-token-missing",
        "federated-token-unreadable",
        "federated-token-empty",
        "federated-token-malformed",
    ],
)
def test_token_file_problems_name_the_environment_variables(code):
    finding = diagnose("token", code, "", m365(FederatedAssertion("/var/run/secrets/token")))
    assert "AZURE_FEDERATED_TOKEN_FILE" in text(finding) and "MAILADMIN_FEDERATED_TOKEN_FILE" in text(finding)
    assert "/var/run/secrets/token" in finding.explanation


def test_the_guide_shows_the_chosen_credentials_step_only(federated):
    anchors = {
        kind: [s.anchor for s in guide_steps(SetupValues.of(m365(c)))]
        for kind, c in {"certificate": certificate(), "federated": federated}.items()
    }
    assert "certificate" in anchors["certificate"] and "client-secret" not in anchors["certificate"]
    assert "federated-credential" in anchors["federated"] and "client-secret" not in anchors["federated"]
    step = next(s for s in guide_steps(SetupValues.of(m365(federated))) if s.anchor == "federated-credential")
    assert any(ISSUER in line and SUBJECT in line for line in step.instructions)
