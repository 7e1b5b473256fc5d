"""mTLS through a real gateway: client certificates made in the test, bound to consumers.

A private CA signs the server certificate and several client certificates; consumers are
bound by fingerprint, by SAN (a SPIFFE URI) and by subject. Certificates from another CA,
no certificate and TLS below 1.2 never get past the handshake.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.gateway import GatewayProcess, base_config
from tests.support.upstream import RecordingUpstream

ADMIN_TOKEN = "mtls-admin-token-0123456789"


@dataclass
class Pem:
    cert: Path
    key: Path
    fingerprint: str


def _name(common_name: str, organisation: str = "Polder Bank") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


class Authority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.name = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name}-ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, label: str, subject: x509.Name, sans: list[x509.GeneralName], server: bool
    ) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self.directory / f"{label}.pem"
        key_path = self.directory / f"{label}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        return Pem(cert_path, key_path, fingerprint)


@dataclass
class Setup:
    gateway: GatewayProcess
    ca: Authority
    clients: dict[str, Pem]


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream) -> Any:
    directory = tmp_path_factory.mktemp("mtls")
    ca = Authority(directory, "polder")
    rogue = Authority(directory, "rogue")
    import ipaddress

    server = ca.issue(
        "server",
        _name("gateway"),
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
        server=True,
    )
    clients = {
        "payments": ca.issue("payments", _name("payments"), [], server=False),
        "spiffe": ca.issue(
            "spiffe",
            _name("ledger"),
            [x509.UniformResourceIdentifier("spiffe://polder/ledger")],
            server=False,
        ),
        "reports": ca.issue("reports", _name("reports", "Polder Reports"), [], server=False),
        "unbound": ca.issue("unbound", _name("stranger"), [], server=False),
        "rogue": rogue.issue("rogue-client", _name("payments"), [], server=False),
    }
    config = base_config(
        upstream.port,
        listen={
            "address": "127.0.0.1",
            "port": base_config(upstream.port)["listen"]["port"],
            "tls": {
                "cert_file": str(server.cert),
                "key_file": str(server.key),
                "client_ca_file": str(ca.path),
            },
        },
        consumers=[
            {
                "name": "payments-svc",
                "client_certificates": [{"sha256": clients["payments"].fingerprint}],
                "scopes": ["accounts:read"],
            },
            {
                "name": "ledger-svc",
                "client_certificates": [{"san": "URI:spiffe://polder/ledger"}],
                "scopes": ["accounts:read"],
            },
            {
                "name": "reports-svc",
                "client_certificates": [{"subject": "CN=reports,O=Polder Reports"}],
                "scopes": [],
            },
        ],
        routes=[
            {
                "name": "accounts",
                "match": {"path_prefix": "/api/v1/accounts"},
                "upstream": "echo",
                "auth": ["mtls"],
                "scopes": ["accounts:read"],
            },
            {
                "name": "reports",
                "match": {"path_prefix": "/api/v1/reports"},
                "upstream": "echo",
                "auth": ["mtls"],
            },
        ],
    )
    gateway = GatewayProcess(config, directory, {"DIJK_ADMIN_TOKEN": ADMIN_TOKEN})
    gateway.start()
    yield Setup(gateway, ca, clients)
    gateway.stop()


def _context(
    setup: Setup, client: str | None, maximum: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(setup.ca.path))
    if maximum is not None:  # let the client offer old versions: the server must refuse
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
    if client is not None:
        pem = setup.clients[client]
        context.load_cert_chain(str(pem.cert), str(pem.key))
    return context


def get(setup: Setup, path: str, client: str | None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", setup.gateway.port, context=_context(setup, client), timeout=10
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, json.loads(body) if body else {}


def test_certificate_bound_by_fingerprint_is_accepted(mtls: Setup) -> None:
    status, body = get(mtls, "/api/v1/accounts", "payments")
    assert status == 200, body


def test_certificate_bound_by_spiffe_san_is_accepted(mtls: Setup) -> None:
    assert get(mtls, "/api/v1/accounts", "spiffe")[0] == 200


def test_certificate_bound_by_subject_is_accepted_but_needs_the_scope(mtls: Setup) -> None:
    assert get(mtls, "/api/v1/reports", "reports")[0] == 200
    status, body = get(mtls, "/api/v1/accounts", "reports")
    assert status == 403
    assert body["reason"] == "authz.insufficient_scope"


def test_certificate_of_the_ca_bound_to_no_consumer_is_401(mtls: Setup) -> None:
    status, body = get(mtls, "/api/v1/accounts", "unbound")
    assert status == 401
    assert body["reason"] == "auth.unknown_certificate"


@pytest.mark.parametrize("client", [None, "rogue"])
def test_no_certificate_or_another_ca_fails_the_handshake(mtls: Setup, client: str | None) -> None:
    with pytest.raises(
        (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.HTTPException)
    ):
        get(mtls, "/api/v1/accounts", client)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_is_refused(mtls: Setup) -> None:
    context = _context(mtls, "payments", maximum=ssl.TLSVersion.TLSv1_1)
    connection = http.client.HTTPSConnection(
        "127.0.0.1", mtls.gateway.port, context=context, timeout=5
    )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        connection.request("GET", "/api/v1/accounts")
    connection.close()


def test_revoked_certificate_is_refused(mtls: Setup) -> None:
    import urllib.request

    credential = "cert:" + mtls.clients["spiffe"].fingerprint[:16]
    request = urllib.request.Request(
        f"http://127.0.0.1:{mtls.gateway.admin_port}/admin/api/v1/keys/revoke",
        method="POST",
        data=json.dumps({"credential_id": credential}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    status, body = get(mtls, "/api/v1/accounts", "spiffe")
    assert status == 401
    assert body["reason"] == "auth.certificate_revoked"
    assert get(mtls, "/api/v1/accounts", "payments")[0] == 200
