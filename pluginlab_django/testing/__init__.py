"""The sandbox: a loopback emulator of the PluginLab and Plugipay APIs.

``from pluginlab_django.testing import Sandbox`` works without Django
settings; see docs/sandbox.md.
"""

from .sandbox import ENV_KEYS, Sandbox

__all__ = ["ENV_KEYS", "Sandbox"]
