"""The sender over https: to the address it checked, with the receiver's name as the TLS server name,
and the certificate verified against that name (a real TLS server: pytest-httpserver)."""

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Response

from app.notifications.secrets import new_secret
from app.notifications.sender import Sender
from tests.helpers.live_server import free_port

NAME = "hooks.test"  # resolved by the test's resolver only: the sender must never ask the system for it


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for NAME and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def tls_receiver(certificate):
    """An https server on 127.0.0.1 with NAME's certificate, answering 204 and keeping each request."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = HTTPServer("127.0.0.1", free_port(), ssl_context=context)
    seen = []
    server.expect_request("/hook", method="POST").respond_with_handler(
        lambda request: seen.append(request) or Response(status=204)
    )
    server.start()
    yield server, seen
    server.stop()


@pytest.fixture
def sender(certificate):
    """A sender that trusts the certificate and resolves every name to 127.0.0.1; closed afterwards."""
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    made = Sender(timeout_s=2, allow_private=True, resolver=lambda host, port: ["127.0.0.1"], ssl_context=trust)
    yield made
    made.close()


def test_https_goes_to_the_checked_address_under_the_receivers_own_name(sender, tls_receiver):
    server, seen = tls_receiver

    outcome = sender.send(sender.destination(f"https://{NAME}:{server.port}/hook"), new_secret(), "msg_1", "{}")

    assert (outcome.status, outcome.error) == (204, None)
    assert seen[0].headers["Host"] == f"{NAME}:{server.port}" and seen[0].headers["webhook-id"] == "msg_1"


def test_a_certificate_for_another_name_is_refused(sender, tls_receiver):
    server, seen = tls_receiver

    outcome = sender.send(sender.destination(f"https://other.test:{server.port}/hook"), new_secret(), "msg_1", "{}")

    assert outcome.status is None and "certificate verify failed" in outcome.error and seen == []
