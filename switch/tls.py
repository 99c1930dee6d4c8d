"""TLS contexts for the SIP listeners and outgoing connections.

With no certificate configured, a self-signed one for the SIP domain (and
``localhost``, ``127.0.0.1``, ``::1``) is generated once into
``DATA_DIR/tls/{cert,key}.pem`` and reused while it is valid. That is what
``make run`` and the tests use; phones that verify certificates need a real one
(``sip.tls.certificate`` / ``private_key`` in ``switch.yaml``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from switch.settings import Settings

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 825  # the longest validity Apple and browsers accept
RENEW_BEFORE = dt.timedelta(days=30)


def ensure_self_signed(directory: Path, domain: str) -> tuple[Path, Path]:
    """``(cert, key)`` PEM paths in ``directory``, generated when missing or expiring."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.is_file() and key_path.is_file() and _still_valid(cert_path, domain):
        return cert_path, key_path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(domain), x509.DNSName("localhost")]
    alt_names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("tls.self_signed", extra={"cert": str(cert_path), "domain": domain})
    return cert_path, key_path


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _still_valid(cert_path: Path, domain: str) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound, OSError):
        return False
    expires = cert.not_valid_after_utc
    return domain in names.get_values_for_type(x509.DNSName) and (
        expires - dt.datetime.now(dt.UTC) > RENEW_BEFORE
    )


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Context of the TLS listeners (TLS 1.2+; clients are not asked for a certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(*, verify: bool = True, ca_file: Path | None = None) -> ssl.SSLContext:
    """Context of the TLS connections the switch opens (trunks, phones over TLS)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def contexts(settings: Settings, data_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(server, client)`` contexts from the settings, generating a certificate if needed."""
    tls = settings.sip.tls
    if tls.certificate is not None and tls.private_key is not None:
        cert, key = settings.resolve(tls.certificate), settings.resolve(tls.private_key)
    else:
        cert, key = ensure_self_signed(data_dir / "tls", settings.sip.domain)
    ca_file = settings.resolve(tls.ca_file) if tls.ca_file is not None else None
    return server_context(cert, key), client_context(verify=tls.verify_peer, ca_file=ca_file)
