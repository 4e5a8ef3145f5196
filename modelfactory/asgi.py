"""ASGI entry point: HTTP through Django, websockets through Channels.

Websockets pass AllowedHostsOriginValidator (a missing or foreign Origin is
refused) and AuthMiddlewareStack (the Django session user on scope["user"]).
Each consumer then checks what the user may see. HTTP bodies over MAX_UPLOAD_BYTES are refused
(413) before they are read (core.limits.BodySizeLimit).
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

application = ProtocolTypeRouter(
    {
        # A body larger than the largest upload is refused before Django reads any of it.
        "http": BodySizeLimit(django_asgi_app, settings.MAX_UPLOAD_BYTES + MULTIPART_SLACK),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
