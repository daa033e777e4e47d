"""The HTTPS adapter verifies with the shared trust context only: no CA file per connection."""

from __future__ import annotations

import requests
from urllib3.connectionpool import HTTPSConnectionPool

from settings_app.http import TrustAdapter
from settings_app.tls import trust_context


def prepared(url: str = "https://login.example.test/tenant/oauth2/v2.0/token") -> requests.PreparedRequest:
    return requests.Request("POST", url).prepare()


def test_no_ca_file_reaches_the_connection_pool(tmp_path):
    adapter = TrustAdapter(trust_context())
    for verify in (True, str(tmp_path / "bundle.pem"), str(tmp_path)):
        _, pool_kwargs = adapter.build_connection_pool_key_attributes(prepared(), verify)
        assert "ca_certs" not in pool_kwargs and "ca_cert_dir" not in pool_kwargs
        assert pool_kwargs["cert_reqs"] == "CERT_REQUIRED"


def test_no_ca_file_reaches_a_connection_either(ca_bundle_path):
    adapter = TrustAdapter(trust_context(str(ca_bundle_path)))
    pool = HTTPSConnectionPool("login.example.test", 443)
    for verify in (True, str(ca_bundle_path)):
        adapter.cert_verify(pool, "https://login.example.test/", verify, None)
        assert pool.ca_certs is None and pool.ca_cert_dir is None
        assert pool.cert_reqs == "CERT_REQUIRED"


def test_the_pool_verifies_with_the_given_context():
    context = trust_context()
    adapter = TrustAdapter(context)
    pool = adapter.get_connection_with_tls_context(prepared(), verify=True)
    assert pool.conn_kw["ssl_context"] is context
