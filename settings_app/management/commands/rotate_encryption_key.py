from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models.functions import Cast
from django.utils.translation import gettext, ngettext

from settings_app import crypto
from settings_app.fields import EncryptedTextField

RAW = "_ciphertext"


@dataclass(frozen=True)
class _Secret:
    model: type[models.Model]
    field: EncryptedTextField
    pk: object
    ciphertext: str

    @property
    def name(self) -> str:
        return gettext("the %(field)s of the %(model)s (pk %(pk)s)") % {
            "field": self.field.verbose_name,
            "model": self.model._meta.verbose_name,
            "pk": self.pk,
        }


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (SMTP password, client secret, certificate private keys, webhook URL) "
        "with the first key of MAILADMIN_ENCRYPTION_KEYS. Run it after putting a new key first and restarting; "
        "then the old keys can be removed. All or nothing: if any secret cannot be decrypted, nothing is changed."
    )

    def handle(self, *args, **options) -> None:
        try:
            crypto.check_keys()
        except ImproperlyConfigured as exc:
            raise CommandError(
                gettext("%(problem)s Fix MAILADMIN_ENCRYPTION_KEYS; nothing was changed.") % {"problem": exc}
            ) from None
        with transaction.atomic():
            secrets = _stored_secrets()
            rotated = [(secret, self._reencrypt(secret)) for secret in secrets]
            for secret, ciphertext in rotated:
                # A SQL literal: EncryptedTextField would encrypt a plain str a second time.
                secret.model._base_manager.filter(pk=secret.pk).update(
                    **{secret.field.name: models.Value(ciphertext, output_field=models.TextField())}
                )
        self.stdout.write(
            self.style.SUCCESS(
                ngettext(
                    "Re-encrypted %(count)d secret with the first key of MAILADMIN_ENCRYPTION_KEYS. Keys after "
                    "the first are no longer needed for stored secrets: remove them and restart.",
                    "Re-encrypted %(count)d secrets with the first key of MAILADMIN_ENCRYPTION_KEYS. Keys after "
                    "the first are no longer needed for stored secrets: remove them and restart.",
                    len(rotated),
                )
                % {"count": len(rotated)}
            )
        )

    @staticmethod
    def _reencrypt(secret: _Secret) -> str:
        try:
            return crypto.reencrypt(secret.ciphertext)
        except crypto.SecretUnreadable:
            raise CommandError(
                gettext(
                    "Cannot decrypt %(secret)s with any key in MAILADMIN_ENCRYPTION_KEYS. Add the key it was "
                    "encrypted with after the new first key and run this command again, or enter that secret again "
                    "on the Outgoing Email settings page. Nothing was changed."
                )
                % {"secret": secret.name}
            ) from None


def _stored_secrets() -> list[_Secret]:
    """Every non-empty encrypted value, as stored, with its rows locked until the transaction ends."""
    secrets = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not isinstance(field, EncryptedTextField):
                continue
            # Cast to a plain TextField reads the ciphertext as stored, bypassing from_db_value.
            rows = (
                model._base_manager.select_for_update()
                .annotate(**{RAW: Cast(field.name, output_field=models.TextField())})
                .exclude(**{f"{RAW}__isnull": True})
                .exclude(**{RAW: ""})
                .order_by("pk")
                .values_list("pk", RAW)
            )
            secrets.extend(_Secret(model, field, pk, ciphertext) for pk, ciphertext in rows)
    return secrets
