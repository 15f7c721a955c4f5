"""Refreshing identity tokens: PluginLab first, then the mirrored row."""

from __future__ import annotations

from .. import sync
from ..clients import RefreshNotSupported, RefreshTokenFailed, get_pluginlab_client
from ..models import Identity


def refresh_identity(identity: Identity) -> Identity:
    """Get a fresh access token for ``identity`` and store it (encrypted).

    Raises ``RefreshNotSupported`` for GitHub and Microsoft (without calling
    PluginLab), ``RefreshTokenFailed`` when the provider refused the refresh
    token (the row is marked ``needs_reauth``: the member must sign in
    again; do not retry), or another ``RemoteError`` (nothing changes then).
    """
    if not identity.can_refresh:
        raise RefreshNotSupported(
            f"{identity.get_provider_display()} tokens cannot be refreshed.",
            code="auth/refresh-not-supported",
        )
    member = identity.member
    try:
        fresh = get_pluginlab_client().refresh_identity_token(member.remote_id, identity.provider)
    except RefreshTokenFailed:
        Identity.objects.filter(pk=identity.pk).update(needs_reauth=True)
        identity.needs_reauth = True
        raise
    return sync.store_identity(member, fresh, refreshed=True)
