"""Celery tasks: thin wrappers over ``pluginlab_django.sync`` and the services.

A package so each domain keeps its own module; Celery's autodiscovery
imports this package, which imports them all.
"""

from .apikeys import *  # noqa: F403
from .events import *  # noqa: F403
from .identities import *  # noqa: F403
from .sync import *  # noqa: F403
from .webhooks import *  # noqa: F403
