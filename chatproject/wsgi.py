"""WSGI entry point: gunicorn serves `chatproject.wsgi:application`."""

import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

application = get_wsgi_application()
# Import every view while the worker boots, before it accepts a connection, not
# in its first request: the URLconf's imports take 1.7 s (the ChatKit SDK brings
# the openai-agents SDK), which a cold worker's first user would otherwise wait.
import_module(settings.ROOT_URLCONF)
