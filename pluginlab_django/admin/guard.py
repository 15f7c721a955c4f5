"""Invalid PLUGINLAB settings in the admin: a clear message, never a 500 page.

A site served without ``manage.py check`` may run with a setting that cannot
work (or with no ``ADMIN_SECRET``). Reading such a setting raises
:class:`~pluginlab_django.conf.PluginLabImproperlyConfigured`; every view of
our model admins is wrapped so that an action (a POST) goes back to its page
with the error as an admin message, and a page that cannot be shown (a GET)
is replaced by one that says what is wrong (status 503).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern
from django.utils.translation import gettext as _

from ..conf import PluginLabImproperlyConfigured

logger = logging.getLogger("pluginlab_django.admin")

TEMPLATE = "admin/pluginlab_django/misconfigured.html"


def guard_admin_site(
    site: admin.AdminSite | None = None, app_label: str = "pluginlab_django"
) -> None:
    """Guard the views of every model admin of ``app_label`` on ``site`` (the default site)."""
    for model, model_admin in (site or admin.site)._registry.items():
        if model._meta.app_label == app_label:
            guard_model_admin(model_admin)


def guard_model_admin(model_admin: admin.ModelAdmin) -> None:
    """Wrap the views ``model_admin.get_urls()`` returns (idempotent)."""
    if getattr(model_admin, "_pluginlab_guarded", False):
        return
    get_urls = model_admin.get_urls

    def guarded_get_urls() -> list[Any]:
        patterns = get_urls()
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = guard_view(pattern.callback, model_admin)
        return patterns

    model_admin.get_urls = guarded_get_urls  # type: ignore[method-assign]
    model_admin._pluginlab_guarded = True  # type: ignore[attr-defined]


def guard_view(view: Callable[..., HttpResponse], model_admin: admin.ModelAdmin) -> Any:
    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
            if isinstance(response, TemplateResponse) and not response.is_rendered:
                response.render()  # settings read while rendering are caught here too
            return response
        except PluginLabImproperlyConfigured as exc:
            logger.error("Admin %s %s: %s", request.method, request.path, exc)
            if request.method == "POST":
                messages.error(request, str(exc))
                return HttpResponseRedirect(request.get_full_path())
            context = {
                **model_admin.admin_site.each_context(request),
                "title": _("PluginLab is not configured correctly"),
                "message": str(exc),
            }
            return TemplateResponse(request, TEMPLATE, context, status=503)

    return guarded
