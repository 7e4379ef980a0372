"""Say why a server's certificate fails verify-ca or verify-full, in words an operator can act on.

libpq reports every refused certificate as "certificate verify failed", whether it has expired, was
signed by another CA or names another host. When a connection fails, the preflight repeats the TLS
handshake itself (PostgreSQL's SSLRequest, then Python's ssl module with the same CA bundle and
client certificate) to learn OpenSSL's own reason, and names the key that fixes it.
"""

from __future__ import annotations

import socket
import ssl
import struct

from infra.settings import NAMESPACE, ServerSettings

# The first packet of a TLS connection to PostgreSQL: length 8, then the SSLRequest code.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
# OpenSSL's X509_V_ERR_* codes, grouped by what the operator does about them.
EXPIRED, NOT_YET_VALID = 10, 9
WRONG_NAME = (62, 64)  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
UNKNOWN_ISSUER = (2, 18, 19, 20, 21)  # no issuer in the bundle; self-signed; cannot verify the first certificate


def certificate_problem(server: ServerSettings) -> str | None:
    """What is wrong with the server's certificate for this stack's sslmode; None when nothing is."""
    if server.sslmode not in ("verify-ca", "verify-full"):
        return None
    context = ssl.create_default_context(cafile=server.tls.root_cert)
    context.check_hostname = server.sslmode == "verify-full"
    if server.tls.cert:
        context.load_cert_chain(server.tls.cert, server.tls.key)
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            if not offers_tls(raw):
                return "is missing: the server does not offer TLS, which sslmode " + server.sslmode + " requires"
            with context.wrap_socket(raw, server_hostname=server.host):
                return None
    except ssl.SSLCertVerificationError as error:
        return describe(server, error.verify_code, error.verify_message)
    except (OSError, ssl.SSLError):
        return None  # not the certificate: the connection error libpq gave stands


def offers_tls(raw: socket.socket) -> bool:
    """Ask for TLS as libpq does (SSLRequest); True when the server agrees ('S'), and TLS may start."""
    raw.sendall(SSL_REQUEST)
    return raw.recv(1) == b"S"


def describe(server: ServerSettings, code: int, reason: str) -> str:
    if code == EXPIRED:
        return "has expired: renew it on the server (or check this machine's clock)"
    if code == NOT_YET_VALID:
        return "is not valid yet: check this machine's clock and the certificate's start date"
    if code in WRONG_NAME:
        return (
            f"does not name the host {server.host!r}: set {NAMESPACE}:host to a name the certificate holds, or use "
            "sslmode verify-ca, which checks the CA but not the name"
        )
    if code in UNKNOWN_ISSUER:
        return (
            f"is not signed by a CA in {NAMESPACE}:sslRootCert ({server.tls.root_cert}): set that key to the CA "
            "bundle of your server"
        )
    return f"was refused ({reason})"
