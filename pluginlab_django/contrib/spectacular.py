"""drf-spectacular support: documents PluginLabTokenAuthentication as an
HTTP bearer scheme, so generated schemas (and Swagger UI's "Authorize")
know how to call the API.

Imported by ``PluginLabConfig.ready()`` only when drf-spectacular is
installed; defining the class registers it with drf-spectacular.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class PluginLabTokenScheme(OpenApiAuthenticationExtension):
    target_class = "pluginlab_django.authentication.PluginLabTokenAuthentication"
    name = "PluginLabToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A PluginLab user token (PS256 JWT), sent as "
            "`Authorization: Bearer <token>`.",
        }
