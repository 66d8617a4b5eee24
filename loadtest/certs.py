"""Self-signed certificates for 127.0.0.1, made at run time for TLS tests and benchmarks.

One short-lived certificate per call (a new key each time, so a test can tell two apart
by their fingerprints), valid for ``127.0.0.1``, ``::1`` and ``localhost``, written as PEM
files. Uses ``cryptography``'s X.509 builder
(https://cryptography.io/en/latest/x509/tutorial/#creating-a-self-signed-certificate).
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

__all__ = ["self_signed"]


def self_signed(directory: Path, name: str = "pixring-test") -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``directory``, named after ``name``; an EC P-256 key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
