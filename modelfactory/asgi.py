"""ASGI entry point: HTTP through Django, websockets through Channels.

Websockets pass AllowedHostsOriginValidator (a missing or foreign Origin is
refused) and AuthMiddlewareStack (the Django session user on scope["user"]).
Each consumer then checks what the user may see. HTTP bodies over MAX_UPLOAD_BYTES are refused
(413) before they are read (core.limits.BodySizeLimit). Under daphne, Twisted's own parsing of form
bodies is off: it answers a malformed multipart body itself, with an empty 400 and no words, before
Django (which parses bodies and answers in words) sees it; daphne never uses what Twisted parsed.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelfactory.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from core.limits import MULTIPART_SLACK, BodySizeLimit  # noqa: E402
from modelfactory.routing import websocket_urlpatterns  # noqa: E402

try:
    from daphne.http_protocol import WebRequest  # noqa: E402
except ImportError:  # served by another ASGI server
    WebRequest = None
if WebRequest is not None and not getattr(WebRequest, "forms_left_to_django", False):
    _twisted_init = WebRequest.__init__

    def _init_without_form_parsing(self, *args, **kwargs):
        _twisted_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False  # Twisted's switch (twisted.web.http.Request)

    WebRequest.__init__ = _init_without_form_parsing
    WebRequest.forms_left_to_django = True

application = ProtocolTypeRouter(
    {
        # A body larger than the largest upload is refused before Django reads any of it.
        "http": BodySizeLimit(django_asgi_app, settings.MAX_UPLOAD_BYTES + MULTIPART_SLACK),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
