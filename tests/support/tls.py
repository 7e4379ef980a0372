"""Certificates made on the spot, and the embedded server switched to TLS with them for a test.

A test CA signs the server's certificate (for the name `localhost` only, so that 127.0.0.1 is a
wrong host name) and a client certificate; a second CA and an expired server certificate are the
failures an operator meets. The server is told to require the client certificate of one role.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fixtures.cluster import Server
from ops.deploy.tls_check import offers_tls
from ops.localpg import embedded

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
SERVER_FILES = ("test-server.crt", "test-server.key", "test-ca.crt")
SSL_SETTINGS = ("ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file")


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def certificate_authority(name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue(
    ca: Issued, common_name: str, dns_names: tuple[str, ...] = (), valid: tuple[datetime.datetime, ...] = ()
) -> Issued:
    """A leaf certificate signed by `ca`: for a server when `dns_names` is given, else for a client."""
    not_before, not_after = valid or (NOW - DAY, NOW + 30 * DAY)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if dns_names:
        names = [x509.DNSName(name) for name in dns_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass(frozen=True)
class TlsFiles:
    """What a client holds: the CA bundle, a client certificate and its key; and a second, unrelated CA."""

    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path


def write_client_files(folder: Path, ca: Issued, client: Issued, other_ca: Issued) -> TlsFiles:
    files = TlsFiles(folder / "ca.pem", folder / "other-ca.pem", folder / "client.crt", folder / "client.key")
    files.ca.write_bytes(ca.cert_pem())
    files.other_ca.write_bytes(other_ca.cert_pem())
    files.client_cert.write_bytes(client.cert_pem())
    files.client_key.write_bytes(client.key_pem())
    os.chmod(files.client_key, 0o600)
    return files


def install_server_certificate(server_cert: Issued, ca: Issued) -> None:
    """Put the server's certificate, key and the CA (for client certificates) in the data folder."""
    contents = (server_cert.cert_pem(), server_cert.key_pem(), ca.cert_pem())
    for name, content in zip(SERVER_FILES, contents, strict=True):
        path = embedded.data_dir() / name
        path.write_bytes(content)
        os.chmod(path, 0o600)
        embedded.give_to_server(path)


@contextmanager
def server_with_tls(server: Server, server_cert: Issued, ca: Issued, certificate_role: str) -> Iterator[None]:
    """TLS on for the test; `certificate_role` may log in only over TLS with a client certificate of `ca`."""
    hba = embedded.data_dir() / "pg_hba.conf"
    original_hba = hba.read_text()
    hba.write_text(
        f"hostnossl all {certificate_role} 127.0.0.1/32 reject\n"
        f"hostssl all {certificate_role} 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n" + original_hba
    )
    cert, key, ca_file = (embedded.data_dir() / name for name in SERVER_FILES)
    with server.connect() as admin:
        admin.execute(f"ALTER SYSTEM SET ssl_cert_file = '{cert}'")
        admin.execute(f"ALTER SYSTEM SET ssl_key_file = '{key}'")
        admin.execute(f"ALTER SYSTEM SET ssl_ca_file = '{ca_file}'")
        admin.execute("ALTER SYSTEM SET ssl = on")
    serve_certificate(server, server_cert, ca)
    try:
        yield
    finally:
        hba.write_text(original_hba)
        with server.connect() as admin:
            for setting in SSL_SETTINGS:
                admin.execute(f"ALTER SYSTEM RESET {setting}")
            admin.execute("SELECT pg_reload_conf()")


def serve_certificate(server: Server, server_cert: Issued, ca: Issued) -> None:
    """Install `server_cert` and return once the server presents it to new connections."""
    install_server_certificate(server_cert, ca)
    with server.connect() as admin:
        admin.execute("SELECT pg_reload_conf()")
    expected = server_cert.certificate.public_bytes(serialization.Encoding.DER)
    deadline = time.monotonic() + 30
    while presented_certificate(server) != expected:
        assert time.monotonic() < deadline, "the server never presented the new certificate"
        time.sleep(0.05)


def presented_certificate(server: Server) -> bytes | None:
    """The certificate the server shows a new TLS connection (DER), or None while TLS is off."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((server.connection.host, server.connection.port), timeout=10) as raw:
        if not offers_tls(raw):
            return None
        with context.wrap_socket(raw) as wrapped:
            return wrapped.getpeercert(binary_form=True)
