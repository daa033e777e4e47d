from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print a new Fernet key for MAILADMIN_ENCRYPTION_KEYS. Nothing is stored: put the key first in "
        "MAILADMIN_ENCRYPTION_KEYS, keep the old keys after it, restart, then run rotate_encryption_key."
    )
    requires_system_checks: list[str] = []

    def handle(self, *args, **options) -> None:
        self.stdout.write(Fernet.generate_key().decode("ascii"))
