"""The MQTT link's credentials: check the files [mqtt] names, build the TLS context, read the password.

``check_files`` runs at start and on SIGHUP, before anything connects: every file the settings name
exists and is readable, the CA file holds certificates, the client key matches the client certificate,
no certificate is expired or not yet valid, the password file is one non-empty line readable by the
service user only. A broken credential is a LinkConfigError naming the setting, the file and what is
wrong; a certificate that expires within ``cert_warn_days`` is a warning returned to the caller.
``fingerprint`` lets the client notice on SIGHUP that a credential file changed and reconnect with it.
"""

from __future__ import annotations

import hashlib
import ssl
import stat
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from edge.settings.errors import SettingsError
from edge.settings.model import Mqtt

DAY_S = 86_400.0
# Readable or writable by group or others: a password file must have none of these bits.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


class LinkConfigError(SettingsError):
    """A credential file named in [mqtt] is missing, unreadable or wrong: ``path`` is the setting
    (``mqtt.key_file``), ``value`` the file, ``reason`` what is wrong with it."""


def _read(field: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LinkConfigError(f"mqtt.{field}", path, f"cannot read: {exc.strerror or exc}") from None


def _certificates(field: str, path: str) -> list[x509.Certificate]:
    """The PEM certificates in a file (at least one)."""
    data = _read(field, path)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise LinkConfigError(
            f"mqtt.{field}", path, "holds no PEM certificate", "a PEM file (-----BEGIN CERTIFICATE-----)"
        ) from None


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_validity(field: str, path: str, cert: x509.Certificate, mq: Mqtt, now_unix_s: float) -> str | None:
    """A warning for a certificate outside its validity period or ending within cert_warn_days.

    Not an error: a charger whose clock is not set yet (no RTC, before NTP) or whose certificate ran
    out must still control its power stage locally; the link fails its handshake and says so until
    the clock or the certificate is right (checked again daily and on SIGHUP)."""
    subject = cert.subject.rfc4514_string() or "(no subject)"
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    where = f"mqtt.{field} = {path!r}: certificate {subject}"
    if now_unix_s < not_before.timestamp():
        return f"{where} is not valid before {_iso(not_before)} (check the clock): the link fails until then"
    if now_unix_s >= not_after.timestamp():
        return f"{where} expired at {_iso(not_after)}: the link fails until it is renewed"
    left_s = not_after.timestamp() - now_unix_s
    if left_s < mq.cert_warn_days * DAY_S:
        return f"{where} expires in {left_s / DAY_S:.0f} days ({_iso(not_after)}); renew it"
    return None


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_key(mq: Mqtt, cert: x509.Certificate) -> list[str]:
    assert mq.key_file is not None
    path = mq.key_file
    data = _read("key_file", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # ssl would prompt for the passphrase on a terminal the daemon does not have.
        raise LinkConfigError(
            "mqtt.key_file", path, "the key is encrypted with a passphrase", "an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise LinkConfigError(
            "mqtt.key_file", path, "holds no PEM private key", "a PEM file (-----BEGIN PRIVATE KEY-----)"
        ) from None
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise LinkConfigError(
            "mqtt.key_file", path, f"does not match the certificate in mqtt.cert_file ({mq.cert_file})"
        )
    if Path(path).stat().st_mode & stat.S_IRWXO:
        return [f"mqtt.key_file = {path!r}: readable by every user of this machine; chmod o-rwx it"]
    return []


def _password(mq: Mqtt) -> str:
    """The password in ``password_file``: one line, not shared with group or others."""
    assert mq.password_file is not None
    path = mq.password_file
    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise LinkConfigError("mqtt.password_file", path, f"cannot read: {exc.strerror or exc}") from None
    if mode & _SHARED_BITS:
        raise LinkConfigError(
            "mqtt.password_file",
            path,
            f"mode {stat.S_IMODE(mode):04o} lets group or others read or change the password",
            "0600 or 0400, owned by the service user",
        )
    data = _read("password_file", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LinkConfigError("mqtt.password_file", path, "not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise LinkConfigError("mqtt.password_file", path, "empty", "one line holding the password")
    if "\n" in text or "\r" in text:
        raise LinkConfigError(
            "mqtt.password_file", path, "more than one line", "one line holding the password"
        )
    return text


def check_files(mq: Mqtt, *, now_unix_s: float) -> list[str]:
    """Check every credential file of an enabled link; return warnings (a certificate expiring soon).

    Raises LinkConfigError for a file that is missing or unreadable, a CA file without a certificate,
    a key that does not match its certificate or is encrypted, a password file that is empty, several
    lines, or open to group or others. A certificate expired or not yet valid at ``now_unix_s`` is a
    warning (see ``_check_validity``).
    """
    if not mq.enabled:
        return []
    warnings: list[str] = []
    if mq.tls and mq.ca_file is not None:
        for cert in _certificates("ca_file", mq.ca_file):
            warning = _check_validity("ca_file", mq.ca_file, cert, mq, now_unix_s)
            if warning is not None:
                warnings.append(warning)
    if mq.tls and mq.cert_file is not None:
        cert = _certificates("cert_file", mq.cert_file)[0]
        warning = _check_validity("cert_file", mq.cert_file, cert, mq, now_unix_s)
        if warning is not None:
            warnings.append(warning)
        if mq.key_file is not None:
            warnings.extend(_check_key(mq, cert))
    if mq.password_file is not None:
        _password(mq)
    return warnings


def tls_context(mq: Mqtt) -> ssl.SSLContext | None:
    """The client's TLS context (None without TLS): TLS 1.2 or newer, the broker verified against
    ``ca_file`` and its host name, the client certificate and key loaded when given."""
    if not mq.tls:
        return None
    if mq.ca_file is None:
        raise LinkConfigError(
            "mqtt.ca_file", None, "mqtt.tls = true needs the broker's CA", "a PEM file path"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=mq.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise LinkConfigError("mqtt.ca_file", mq.ca_file, f"not a usable CA file: {exc}") from None
    if mq.cert_file is not None:
        try:
            # An empty passphrase: an encrypted key fails here instead of prompting on a terminal.
            ctx.load_cert_chain(mq.cert_file, mq.key_file, password="")
        except (OSError, ssl.SSLError) as exc:
            raise LinkConfigError(
                "mqtt.cert_file", mq.cert_file, f"certificate and mqtt.key_file not usable: {exc}"
            ) from None
    return ctx


def read_password(mq: Mqtt) -> str | None:
    """The password from ``password_file`` (None when there is none), checked as check_files does."""
    if mq.password_file is None:
        return None
    return _password(mq)


def cert_expiry_unix_s(path: str) -> float:
    """When the first certificate in a PEM file expires (Unix seconds)."""
    return _certificates("cert_file", path)[0].not_valid_after_utc.timestamp()


def fingerprint(mq: Mqtt) -> str:
    """A hash of the credential files' names and contents: it changes when any of them is replaced.

    A file that cannot be read hashes as its error, so it never raises (check_files says what is wrong).
    """
    h = hashlib.sha256()
    for field in ("ca_file", "cert_file", "key_file", "password_file"):
        path = getattr(mq, field)
        h.update(f"{field}={path}\0".encode())
        if path is None:
            continue
        try:
            h.update(Path(path).read_bytes())
        except OSError as exc:
            h.update(f"unreadable: {exc.strerror or exc}".encode())
        h.update(b"\0")
    return h.hexdigest()
