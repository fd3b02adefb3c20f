"""A tech adapter behind a company certificate authority: `ca_bundle` per adapter, else REQUESTS_CA_BUNDLE.

The adapter is a real HTTPS server on 127.0.0.1 whose certificate is signed by a CA made in the test.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.client import TechAdapterClient
from adapters.payloads import component_request
from adapters.registry import AdapterRegistry
from bot.config import load_config
from bot.descriptor.errors import InputErrors, SourcePosition

COMPONENT = "urn:dmb:cmp:finance:cashflow:1:output"
REQUEST = component_request({"id": "urn:dmb:dp:finance:cashflow:1", "components": [{"id": COMPONENT}]}, COMPONENT)
TEMPLATE = "urn:dmb:itm:company-adapter:0"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for the test, and the server certificate it signed, as PEM files."""

    ca: Path
    certificate: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(folder: Path) -> Authority:
    """A CA and a certificate for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("meshbot test CA")).issuer_name(_name("meshbot test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    authority = Authority(folder / "company-ca.pem", folder / "adapter.pem", folder / "adapter-key.pem")
    authority.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    authority.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    authority.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return authority


class _Adapter(BaseHTTPRequestHandler):
    """Answers validate with valid, provision with COMPLETED, and keeps the paths it was asked."""

    received: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(self.path)
        answer = {"status": "COMPLETED", "result": "done"} if self.path.endswith("/provision") else {"valid": True}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@dataclass
class HttpsAdapter:
    """The running adapter: its base URL and the paths it answered."""

    url: str
    received: list[str]
    authority: Authority


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def adapter(authority: Authority) -> Iterator[HttpsAdapter]:
    received: list[str] = []
    handler = type("Handler", (_Adapter,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.certificate, authority.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield HttpsAdapter(f"https://127.0.0.1:{server.server_address[1]}/datamesh.specificprovisioner", received,
                           authority)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_ca_from_the_environment(monkeypatch) -> None:
    for variable in CA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_an_adapter_signed_by_an_unknown_authority_is_refused_with_a_clear_message(adapter):
    outcome = TechAdapterClient(adapter.url, timeout=10, backoff=0.0).validate(REQUEST)

    assert outcome.valid is False and outcome.reachable is False
    assert "TLS certificate could not be verified" in outcome.message
    assert "unable to get local issuer certificate" in outcome.message and "ca_bundle" in outcome.message
    assert adapter.received == []


def test_ca_bundle_of_the_adapter_is_trusted(adapter):
    outcome = TechAdapterClient(adapter.url, timeout=10, ca_bundle=str(adapter.authority.ca)).validate(REQUEST)

    assert outcome.valid is True, outcome.message
    assert adapter.received == ["/datamesh.specificprovisioner/v1/validate"]


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_the_environment_s_ca_bundle_is_trusted(adapter, monkeypatch, variable):
    monkeypatch.setenv(variable, str(adapter.authority.ca))

    outcome = TechAdapterClient(adapter.url, timeout=10).validate(REQUEST)

    assert outcome.valid is True, outcome.message
    assert adapter.received == ["/datamesh.specificprovisioner/v1/validate"]


def test_a_ca_bundle_of_the_configuration_is_read_relative_to_it_and_used_by_the_registry(adapter, tmp_path):
    (tmp_path / "certificates").mkdir()
    (tmp_path / "certificates" / "company-ca.pem").write_bytes(adapter.authority.ca.read_bytes())
    configuration = tmp_path / "meshbot.yaml"
    configuration.write_text(f"adapters:\n  - infrastructureTemplateId: {TEMPLATE}\n    url: {adapter.url}\n"
                             "    ca_bundle: certificates/company-ca.pem\n")

    [settings] = load_config(str(configuration)).adapters
    registry = AdapterRegistry([settings])

    assert settings.ca_bundle == str((tmp_path / "certificates" / "company-ca.pem").resolve())
    assert registry.client(settings).validate(REQUEST).valid is True
    assert adapter.received == ["/datamesh.specificprovisioner/v1/validate"]


def test_a_missing_or_unreadable_ca_bundle_is_reported_where_it_is_configured(tmp_path):
    (tmp_path / "not-a-certificate.pem").write_text("hello\n")
    configuration = tmp_path / "meshbot.yaml"
    configuration.write_text(f"adapters:\n  - infrastructureTemplateId: {TEMPLATE}\n"
                             "    url: https://adapter.internal\n    ca_bundle: missing.pem\n"
                             f"  - infrastructureTemplateId: {TEMPLATE}-2\n"
                             "    url: https://adapter.internal\n    ca_bundle: not-a-certificate.pem\n")

    with pytest.raises(InputErrors) as refused:
        load_config(str(configuration))

    missing, unreadable = refused.value.errors
    assert missing.message == f"adapters.0.ca_bundle: file not found: {(tmp_path / 'missing.pem').resolve()}"
    assert missing.position == SourcePosition(str(configuration), 4, 16)
    assert unreadable.message.startswith(f"adapters.1.ca_bundle: {(tmp_path / 'not-a-certificate.pem').resolve()} "
                                         "is not a PEM file of certificates")
    assert unreadable.position == SourcePosition(str(configuration), 7, 16)


@pytest.mark.parametrize("trusted", [True, False], ids=["ca_bundle", "no bundle"])
def test_a_deployment_s_workers_use_the_adapter_s_ca_bundle(adapter, start, trusted):
    from adapters.reference import OUTPUT_PORT_TEMPLATE_ID, STORAGE_TEMPLATE_ID
    from bot.config import AdapterSettings
    from bot.engine.deployment import DeploymentState
    from tests.deploy_harness import example_descriptor

    bundle = str(adapter.authority.ca) if trusted else None
    registry = AdapterRegistry([AdapterSettings(template, adapter.url, timeout=10, ca_bundle=bundle)
                                for template in (STORAGE_TEMPLATE_ID, OUTPUT_PORT_TEMPLATE_ID)])
    descriptor = example_descriptor()
    running = start(1)
    deployment_id, _ = running.request(descriptor, registry.resolve_all(descriptor))
    deployment = running.wait(deployment_id)
    if trusted:
        assert deployment.state is DeploymentState.DEPLOYED, deployment.message
        assert sum(path.endswith("/v1/provision") for path in adapter.received) == 3
    else:
        assert deployment.state is DeploymentState.FAILED  # the adapter was never asked: not a refusal
        assert "certificate" in deployment.message and adapter.received == []
