"""Webhook deliveries: a unique digest of the signed body, and when each was queued.

The digest is filled in for existing rows; of several rows holding one body
(replays stored before this migration) only the oldest gets it, the others
keep NULL, which the unique constraint allows.
"""

import hashlib

from django.db import migrations, models


def fill_digests(apps, schema_editor):
    WebhookDelivery = apps.get_model("pluginlab_django", "WebhookDelivery")
    seen = set()
    rows = WebhookDelivery.objects.order_by("pk").only("pk", "body")
    for row in rows.iterator(chunk_size=500):
        digest = hashlib.sha256(row.body.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        WebhookDelivery.objects.filter(pk=row.pk).update(body_digest=digest)


class Migration(migrations.Migration):
    dependencies = [("pluginlab_django", "0002_syncrun_heartbeat")]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="body_digest",
            field=models.CharField(
                editable=False, max_length=64, null=True, verbose_name="body SHA-256"
            ),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="queued_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="queued"
            ),
        ),
        migrations.RunPython(fill_digests, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="body_digest",
            field=models.CharField(
                editable=False, max_length=64, null=True, unique=True, verbose_name="body SHA-256"
            ),
        ),
    ]
