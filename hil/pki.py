"""A throw-away certificate authority for the tests and the bench (mutual TLS with Mosquitto).

Each test makes its own CA in a temporary directory: a broker certificate for localhost / 127.0.0.1 / ::1
and client certificates named by the charger's identity (the broker maps the certificate's CN to the
user name its ACL confines). Same layout as ``deploy/mosquitto/make-test-ca.sh``, in Python because
the tests make many (EC P-256 keys: milliseconds each). Never for production: keys are unencrypted.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Issued:
    """A certificate and its key as PEM files."""

    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(path, 0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A CA in ``directory`` (``ca.pem``, ``ca.key``) that issues broker and client certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "v2g-edge test CA", *, days: int = 365) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        self._name = _name(name)
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / "ca.pem"
        self.key = directory / "ca.key"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self.key, self._key)

    def issue(
        self,
        file_stem: str,
        common_name: str,
        *,
        server: bool = False,
        hosts: tuple[str, ...] = (),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> Issued:
        """A certificate signed by this CA (``<file_stem>.pem`` / ``.key``), for a client by default;
        valid from 5 minutes ago for 90 days unless given."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(minutes=5))
            .not_valid_after(not_after or now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.directory / f"{file_stem}.pem", self.directory / f"{file_stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(issued.key, key)
        return issued

    def broker(self, hosts: tuple[str, ...] = BROKER_HOSTS) -> Issued:
        """The broker's certificate (``broker.pem``) for the loopback names."""
        return self.issue("broker", hosts[0], server=True, hosts=hosts)

    def client(
        self, identity: str, *, not_before: datetime | None = None, not_after: datetime | None = None
    ) -> Issued:
        """A client certificate with CN ``identity`` (files named after it, ``/`` as ``_``)."""
        stem = "client-" + identity.replace("/", "_")
        return self.issue(stem, identity, not_before=not_before, not_after=not_after)
