"""The guard on the https path: vetted before connecting, and a real TLS fetch from an allowed server.

Servers are on 127.0.0.1 (allowed) and 127.0.0.2 (not allowed); the certificate is made on the spot.
"""

import datetime
import http.server
import ipaddress
import ssl
import threading
import urllib.error

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from qwenvl_data import netguard


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qwenvl-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        body = b"tls ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def __init__(self, host, context):
        super().__init__((host, 0), Handler)
        self.requests, self.connections = [], 0
        self.context = context

    def get_request(self):
        sock, addr = super().get_request()
        self.connections += 1  # counted before TLS: any TCP connection at all
        return self.context.wrap_socket(sock, server_side=True), addr


@pytest.fixture()
def tls_servers(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client's default context trusts our certificate
    servers = [Server(h, ctx) for h in ("127.0.0.1", "127.0.0.2")]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def opener(allow):
    return netguard.build_opener(netguard.AddressPolicy(netguard.parse_allow(allow)))


def test_https_to_allowed_address_is_fetched_over_tls(tls_servers):
    a, _ = tls_servers
    with opener("127.0.0.1").open(f"https://127.0.0.1:{a.server_port}/x.jpg", timeout=5) as r:
        assert r.read() == b"tls ok"
    assert a.requests == ["/x.jpg"]


def test_https_to_unallowed_address_is_refused_before_any_connection(tls_servers):
    a, b = tls_servers
    with pytest.raises(urllib.error.URLError, match="refused_address: 127.0.0.2"):
        opener("127.0.0.1").open(f"https://127.0.0.2:{b.server_port}/x.jpg", timeout=5)
    with pytest.raises(urllib.error.URLError, match="refused_address: 127.0.0.1"):
        opener(None).open(f"https://127.0.0.1:{a.server_port}/x.jpg", timeout=5)
    assert b.connections == 0 and a.connections == 0


def test_https_certificate_is_still_verified(tls_servers, monkeypatch):
    a, _ = tls_servers
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent.pem")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        opener("127.0.0.1").open(f"https://127.0.0.1:{a.server_port}/x.jpg", timeout=5)
    assert a.requests == []
