"""ASGI entry point, for servers that speak ASGI."""

import os
from importlib import import_module

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

application = get_asgi_application()
# Import every view while the worker boots, before it accepts a connection, not
# in its first request: the URLconf's imports take 1.7 s (the ChatKit SDK brings
# the openai-agents SDK), which a cold worker's first user would otherwise wait.
import_module(settings.ROOT_URLCONF)
