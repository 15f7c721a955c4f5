from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from .members import Member


class Dashboard(Member):
    """No table of its own: a proxy so the dashboard is listed on the admin
    index like any model, and seen by whoever may view members."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")
        default_permissions = ()
