"""allauth's account adapter, with one change: a mail server that is down or refuses a
message never turns a sign-up or a password reset into a server error. The person is told
in plain words and can ask for the mail again from their Email page."""

from __future__ import annotations

import logging
import smtplib

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib import messages

log = logging.getLogger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        try:
            super().send_mail(template_prefix, email, context)
        except (smtplib.SMTPException, OSError):
            log.exception("could not send %s to %s", template_prefix, email)
            request = context.get("request") or getattr(self, "request", None)
            if request is not None:
                messages.warning(
                    request,
                    f"We could not send an email to {email} just now. "
                    "You can ask for it again later from your Email page.",
                )
