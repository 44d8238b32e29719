"""E-mail against a real SMTP server requiring STARTTLS and AUTH (aiosmtpd, self-signed cert)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vigil.alerting.nflog import NotificationLog
from vigil.alerting.receivers.base import NotifyError
from vigil.alerting.stages import IntegrationStage, NotifyResult

from .test_receivers_templates import ALERTS, CTX, notifier

USER, PASSWORD = "alice", "s3cret"


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler:
    """Keeps each message with how it arrived; checks PLAIN's authorization identity too."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.identities: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "tls": session.ssl is not None,
                "authenticated": session.authenticated,
                "login": session.auth_data.login if session.auth_data else None,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "content": envelope.content,
            }
        )
        return "250 OK"

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        raw = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        identity, login, password = raw.split(b"\0")
        self.identities.append(identity)
        ok = (login, password) == (USER.encode(), PASSWORD.encode())
        # handled=False: let the server answer 535 itself on failure.
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, password))


def _authenticator(server: Any, session: Any, envelope: Any, mech: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


@pytest.fixture(params=["PLAIN", "LOGIN"])
def server(request: Any, port: int, tls_files: tuple[Path, Path]) -> Iterator[tuple[Any, int]]:
    """A server that refuses MAIL before STARTTLS and before AUTH, offering one mechanism."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    handler = _Handler()
    other = "LOGIN" if request.param == "PLAIN" else "PLAIN"
    ctl = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
        auth_exclude_mechanism=[other],
    )
    ctl.start()
    handler.mechanism = request.param  # type: ignore[attr-defined]
    try:
        yield handler, port
    finally:
        ctl.stop()


def _receiver(port: int, tls: str, auth: str) -> str:
    return (
        "  email_configs:\n"
        f"  - {{to: 'ops@example.com, dev@example.com', from: 'Vigil <am@example.com>',"
        f" smarthost: '127.0.0.1:{port}', {auth} tls_config: {{{tls}}}}}\n"
    )


def test_starttls_auth_delivers(server: tuple[Any, int], tls_files: tuple[Path, Path]) -> None:
    handler, port = server
    ca = f"ca_file: '{tls_files[0]}'"
    auth = f"auth_username: {USER}, auth_password: {PASSWORD}, auth_identity: ops,"
    n = notifier(_receiver(port, ca, auth), "email_configs")
    asyncio.run(n.notify(CTX, ALERTS))
    (got,) = handler.messages
    assert got["tls"] and got["authenticated"] and got["login"] == USER.encode()
    if handler.mechanism == "PLAIN":
        assert handler.identities == [b"ops"]
    assert got["mail_from"] == "am@example.com"
    assert got["rcpt_tos"] == ["ops@example.com", "dev@example.com"]
    msg = email.message_from_bytes(got["content"], policy=email.policy.default)
    assert msg["To"] == "ops@example.com, dev@example.com"
    assert msg["From"] == "Vigil <am@example.com>"
    # The default subject: {{ template "email.default.subject" . }}
    assert msg["Subject"] == "[FIRING:1] Disk (critical)"
    assert msg["Message-Id"].startswith("<") and msg["Message-Id"].endswith(">")
    assert msg["Date"].datetime.timestamp() == CTX.now
    assert msg.get_content_type() == "multipart/alternative"
    (part,) = msg.iter_parts()  # no text part unless `text` is configured
    assert part.get_content_type() == "text/html" and part["Content-Transfer-Encoding"] == (
        "quoted-printable"
    )
    html = part.get_content()
    assert html.startswith("<!DOCTYPE html>") and "disk full" in html
    assert '<a href="http://am:9093/#/alerts?receiver=team">' in html


def test_password_file_and_skip_verify(
    server: tuple[Any, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, port = server
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    auth = f"auth_username: {USER}, auth_password_file: '{secret}',"
    n = notifier(_receiver(port, "insecure_skip_verify: true", auth), "email_configs")
    asyncio.run(n.notify(CTX, ALERTS))
    assert handler.messages[0]["tls"] and handler.messages[0]["authenticated"]
    # Without the CA (and without skipping verification) the self-signed cert is refused.
    strict = notifier(_receiver(port, "", auth), "email_configs")
    with pytest.raises(NotifyError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        asyncio.run(strict.notify(CTX, ALERTS))
    assert len(handler.messages) == 1


def test_wrong_password_retried_then_recorded(
    server: tuple[Any, int], tls_files: tuple[Path, Path]
) -> None:
    handler, port = server
    auth = f"auth_username: {USER}, auth_password: wrong,"
    n = notifier(_receiver(port, "insecure_skip_verify: true", auth), "email_configs")
    with pytest.raises(NotifyError, match="authentication failed") as ei:
        asyncio.run(n.notify(CTX, ALERTS))
    assert ei.value.retry is True  # as Alertmanager: auth errors are retried

    results: list[NotifyResult] = []
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    stage = IntegrationStage(
        "team/email/0",
        n,
        NotificationLog(lambda: CTX.now),
        sleep=fake_sleep,
        max_attempts=3,
        on_result=results.append,
    )
    with pytest.raises(NotifyError):
        asyncio.run(stage.exec(CTX, list(ALERTS)))
    assert len(sleeps) == 2 and stage.stats.failed == 3 and stage.stats.sent == 0
    (res,) = results
    assert not res.success and res.attempts == 3 and "authentication failed" in res.error
    assert handler.messages == []
