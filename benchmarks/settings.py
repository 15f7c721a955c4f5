"""Django settings for the benchmark scripts (and the gunicorn they start).

The test settings, with PLUGINLAB pointed at the sandbox the script started
(passed as JSON in ``PLUGINLAB_BENCH_SETTINGS``) and, when
``PLUGINLAB_BENCH_SQLITE`` is set, an on-disk SQLite database that separate
server processes can share.
"""

import json
import os

from tests.settings import *  # noqa: F403

DEBUG = False

if os.environ.get("PLUGINLAB_BENCH_SETTINGS"):
    PLUGINLAB = {
        **PLUGINLAB,  # noqa: F405
        **json.loads(os.environ["PLUGINLAB_BENCH_SETTINGS"]),
    }

if os.environ.get("PLUGINLAB_BENCH_SQLITE"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["PLUGINLAB_BENCH_SQLITE"],
        }
    }

# Only the token views: the benchmark does not depend on the rest of the app's URLs.
ROOT_URLCONF = "tests.views"
