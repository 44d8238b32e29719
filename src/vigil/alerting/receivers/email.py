"""E-mail over SMTP, as Alertmanager's email notifier.

STARTTLS is used exactly when ``require_tls`` is true (the default) and the
send fails when the server does not offer it; port 465 means implicit TLS.
Authentication happens only when ``auth_username`` is set and the server
advertises AUTH: the first of the server's mechanisms Vigil can satisfy wins
(CRAM-MD5 with ``auth_secret``, PLAIN with ``auth_identity``, LOGIN). The
message is multipart/alternative (text part only when ``text`` is set, then
HTML), parts quoted-printable, headers Q-encoded.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formatdate, getaddresses
from typing import Any

from vigil.alerting.alert import Alert
from vigil.alerting.receiver_config import EmailConfig
from vigil.alerting.receivers.base import NotifyContext, NotifyError, TemplatedNotifier
from vigil.alerting.receivers.http import read_secret_file
from vigil.gotemplate import Template

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


class EmailNotifier(TemplatedNotifier):
    def __init__(
        self, cfg: EmailConfig, templates: Template, external_url: str, timeout: float = 30.0
    ) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved
        self.timeout = timeout
        self.hostname = socket.gethostname() or "localhost.localdomain"

    def message(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> MIMEMultipart:
        """The message as Alertmanager writes it (headers in config order, then defaults)."""
        c = self.cfg
        d = self.data(ctx, alerts)
        headers = dict(c.headers)
        lower = {k.lower() for k in headers}
        # Alertmanager adds these under their canonical names unless configured.
        for k, v in (
            ("To", c.to),
            ("From", c.from_),
            ("Subject", '{{ template "email.default.subject" . }}'),
        ):
            if k.lower() not in lower:
                headers[k] = v
        msg = MIMEMultipart("alternative")
        for k, v in headers.items():
            value = self.tmpl(v, d)
            msg[k] = Header(value, "utf-8").encode() if not value.isascii() else value
        if "message-id" not in lower:
            msg["Message-Id"] = f"<{time.time_ns()}.{random.getrandbits(64)}@{self.hostname}>"
        msg["Date"] = formatdate(ctx.now or time.time(), localtime=True)
        if c.text:
            msg.attach(_part(self.tmpl(c.text, d), "plain"))
        if c.html:
            msg.attach(_part(self.tmpl(c.html, d), "html"))
        return msg

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        d = self.data(ctx, alerts)
        sender = _addresses(self.tmpl(self.cfg.from_, d), "from")
        if len(sender) != 1:
            raise NotifyError(
                f"must be exactly one 'from' address (got: {len(sender)})", retry=False
            )
        rcpts = _addresses(self.tmpl(self.cfg.to, d), "to")
        msg = self.message(ctx, alerts)
        await asyncio.to_thread(self._send, msg, sender[0], rcpts)

    def tls_context(self, host: str) -> ssl.SSLContext:
        """The context for ``tls_config`` (ca_file, cert_file/key_file, insecure_skip_verify)."""
        t = self.cfg.tls_config
        try:
            ctx = ssl.create_default_context(cafile=t.get("ca_file") or None)
            if t.get("cert_file"):
                ctx.load_cert_chain(t["cert_file"], t.get("key_file") or None)
        except (OSError, ssl.SSLError) as exc:
            raise NotifyError(f"parse TLS configuration: {exc}", retry=False) from None
        if t.get("insecure_skip_verify"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _send(self, msg: MIMEMultipart, sender: str, rcpts: list[str]) -> None:
        c = self.cfg
        host, _, port_s = c.smarthost.rpartition(":")
        host = host.strip("[]")
        if not host or not port_s.isdigit():
            raise NotifyError(f"invalid smarthost {c.smarthost!r}: want host:port", retry=False)
        port = int(port_s)
        require_tls = True if c.require_tls is None else c.require_tls
        server_name = c.tls_config.get("server_name") or host
        hello = c.hello or "localhost"
        try:
            if port == 465:
                smtp: smtplib.SMTP = _SMTPSSL(
                    host,
                    port,
                    local_hostname=hello,
                    timeout=self.timeout,
                    context=self.tls_context(server_name),
                    server_name=server_name,
                )
            else:
                smtp = smtplib.SMTP(host, port, local_hostname=hello, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if require_tls and port != 465:
                    if not smtp.has_extn("starttls"):
                        raise NotifyError(
                            f"'require_tls' is true (default) but {c.smarthost!r} does not"
                            " advertise the STARTTLS extension"
                        )
                    _starttls(smtp, self.tls_context(server_name), server_name)
                    smtp.ehlo()
                if c.auth_username and smtp.has_extn("auth"):
                    self._auth(smtp, smtp.esmtp_features.get("auth", ""))
                smtp.send_message(msg, sender, rcpts)
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            # Alertmanager retries failed authentication too (until the next flush).
            raise NotifyError(
                f"SMTP authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(
                f"SMTP error {exc.smtp_code}: {_text(exc.smtp_error)}",
                retry=exc.smtp_code < 500 or exc.smtp_code >= 600,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(f"send RCPT command: {exc.recipients}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP {c.smarthost}: {type(exc).__name__}: {exc}") from None

    def _auth(self, smtp: smtplib.SMTP, mechs: str) -> None:
        c = self.cfg
        problems: list[str] = []
        for mech in mechs.split():
            if mech == "CRAM-MD5":
                if not c.auth_secret:
                    problems.append("missing secret for CRAM-MD5 auth mechanism")
                    continue
                smtp.auth(
                    "CRAM-MD5",
                    _cram_md5(c.auth_username, c.auth_secret),
                    initial_response_ok=False,
                )
                return
            if mech in ("PLAIN", "LOGIN"):
                password = (
                    read_secret_file(c.auth_password_file)
                    if c.auth_password_file
                    else c.auth_password
                )
                if not password:
                    problems.append(f"missing password for {mech} auth mechanism")
                    continue
                if mech == "PLAIN":
                    creds = f"{c.auth_identity}\0{c.auth_username}\0{password}"
                    smtp.auth("PLAIN", lambda _=None, r=creds: r, initial_response_ok=True)
                else:
                    smtp.user, smtp.password = c.auth_username, password
                    smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
                return
        raise NotifyError(
            "find auth mechanism: " + ("; ".join(problems) or f"unknown auth mechanism: {mechs}")
        )


class _SMTPSSL(smtplib.SMTP_SSL):
    """SMTP over implicit TLS, verifying the certificate against `server_name`."""

    def __init__(self, *args: Any, server_name: str, **kw: Any) -> None:
        self._server_name = server_name
        super().__init__(*args, **kw)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._server_name)


def _starttls(smtp: smtplib.SMTP, context: ssl.SSLContext, server_name: str) -> None:
    # smtplib verifies against the connect host; tls_config.server_name may differ.
    code, resp = smtp.docmd("STARTTLS")
    if code != 220:
        raise NotifyError(f"send STARTTLS command: {code} {_text(resp)}")
    if smtp.sock is None:
        raise NotifyError("send STARTTLS command: connection closed")
    smtp.sock = context.wrap_socket(smtp.sock, server_hostname=server_name)
    smtp.file = None
    smtp.helo_resp = smtp.ehlo_resp = None
    smtp.esmtp_features = {}
    smtp.does_esmtp = False


def _part(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(text, _UTF8_QP)
    return part


def _cram_md5(user: str, secret: str) -> Any:
    def respond(challenge: bytes | None = None) -> str:
        digest = hmac.new(secret.encode(), challenge or b"", "md5").hexdigest()
        return f"{user} {digest}"

    return respond


def _addresses(text: str, what: str) -> list[str]:
    got = [a for _, a in getaddresses([text]) if a]
    if not got:
        raise NotifyError(f"parse '{what}' addresses: no address in {text!r}", retry=False)
    return got


def _text(b: bytes | str) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else b
