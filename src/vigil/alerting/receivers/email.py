"""E-mail over SMTP: STARTTLS when offered (required unless require_tls: false),
AUTH PLAIN/LOGIN/CRAM-MD5 as the server offers, multipart text+HTML body."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

from vigil.alerting.alert import Alert
from vigil.alerting.receiver_config import EmailConfig
from vigil.alerting.receivers.base import NotifyContext, NotifyError, TemplatedNotifier
from vigil.alerting.receivers.http import read_secret_file
from vigil.gotemplate import Template


class EmailNotifier(TemplatedNotifier):
    def __init__(
        self, cfg: EmailConfig, templates: Template, external_url: str, timeout: float = 30.0
    ) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved
        self.timeout = timeout
        # For tests against a local server with a self-signed certificate.
        self.ssl_context: ssl.SSLContext | None = None
        if cfg.tls_config.get("insecure_skip_verify"):
            self.ssl_context = ssl._create_unverified_context()

    def message(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> EmailMessage:
        c = self.cfg
        d = self.data(ctx, alerts)
        headers = {
            "From": c.from_,
            "To": c.to,
            "Subject": '{{ template "email.default.subject" . }}',
        }
        for k, v in c.headers.items():
            # Header names are case-insensitive; a configured one replaces the default.
            for dk in list(headers):
                if dk.lower() == k.lower():
                    del headers[dk]
            headers[k.title() if k.lower() in ("from", "to", "subject") else k] = v
        msg = EmailMessage()
        for k, v in headers.items():
            msg[k] = self.tmpl(v, d)
        msg["Date"] = formatdate(ctx.now or time.time())
        msg["Message-Id"] = f"<{uuid.uuid4().hex}@{c.hello or 'localhost'}>"
        text = self.tmpl(c.text, d) if c.text else ""
        html = self.tmpl(c.html, d) if c.html else ""
        if text:
            msg.set_content(text)
            if html:
                msg.add_alternative(html, subtype="html")
        elif html:
            msg.set_content(html, subtype="html")
        else:
            msg.set_content("")
        return msg

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        msg = self.message(ctx, alerts)
        await asyncio.to_thread(self._send, msg)

    def _send(self, msg: EmailMessage) -> None:
        c = self.cfg
        host, _, port_s = c.smarthost.rpartition(":")
        if not host or not port_s.isdigit():
            raise NotifyError(f"invalid smarthost {c.smarthost!r}: want host:port", retry=False)
        port = int(port_s)
        require_tls = True if c.require_tls is None else c.require_tls
        rcpts = [a for _, a in getaddresses([msg["To"] or ""]) if a]
        try:
            if port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    host,
                    port,
                    local_hostname=c.hello or None,
                    timeout=self.timeout,
                    context=self.ssl_context,
                )
            else:
                smtp = smtplib.SMTP(
                    host, port, local_hostname=c.hello or None, timeout=self.timeout
                )
            with smtp:
                smtp.ehlo()
                if port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                        smtp.ehlo()
                    elif require_tls:
                        raise NotifyError(
                            f"'require_tls' is true (default) but {c.smarthost} does not advertise the STARTTLS extension",
                            retry=False,
                        )
                if c.auth_username or c.auth_secret:
                    password = c.auth_password or (
                        read_secret_file(c.auth_password_file) if c.auth_password_file else ""
                    )
                    if not smtp.has_extn("auth"):
                        raise NotifyError(
                            "server does not support AUTH but credentials are configured",
                            retry=False,
                        )
                    smtp.login(c.auth_username, password or c.auth_secret)
                smtp.send_message(msg, from_addr=_addr(msg["From"] or ""), to_addrs=rcpts)
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(
                f"SMTP authentication failed: {exc.smtp_code} {exc.smtp_error!r}", retry=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(
                f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}",
                retry=exc.smtp_code >= 400 and exc.smtp_code < 500,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(
                f"SMTP {c.smarthost}: {type(exc).__name__}: {exc}", retry=True
            ) from None


def _addr(header: str) -> str:
    got = getaddresses([header])
    return got[0][1] if got else header
