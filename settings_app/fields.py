"""A model field that keeps its value encrypted in the database."""

from __future__ import annotations

from django.db import models
from django.views.decorators.debug import sensitive_variables

from settings_app import crypto


class UnreadableSecret:
    """Stands for a stored secret that no configured key decrypts.

    It keeps the ciphertext so that saving the record does not destroy the secret
    (a restored key makes it readable again); it is falsy and shows no content.
    """

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<UnreadableSecret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableSecret) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


class EncryptedTextField(models.TextField):
    """Text encrypted with settings_app.crypto on save and decrypted on load.

    An empty string is stored as-is (no secret). Lookups are refused: equal
    plaintexts give different ciphertexts, so a filter could never match.
    """

    @sensitive_variables("value")
    def get_db_prep_save(self, value, connection):
        # Django hands expressions (Value, F...) here too; they are SQL, not plaintext.
        if hasattr(value, "as_sql"):
            return value
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        if value in (None, ""):
            return value
        return crypto.encrypt(str(value))

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return crypto.decrypt(value)
        except crypto.SecretUnreadable:
            return UnreadableSecret(value)

    def get_lookup(self, lookup_name):
        raise NotImplementedError(f"{self.__class__.__name__} does not support lookups.")

    def get_transform(self, lookup_name):
        raise NotImplementedError(f"{self.__class__.__name__} does not support lookups.")
