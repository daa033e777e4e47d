from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils.translation import gettext


class Command(BaseCommand):
    help = (
        "Create a first administrator when no superuser exists yet, and say how to log in. "
        "Uses DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD when set, else 'admin' "
        "and a generated password. Does nothing when a superuser exists."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="The address to tell the user about.")

    def handle(self, *args, url: str, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(gettext("Log in at %(url)s with your administrator account.") % {"url": url})
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        shown = (
            password
            if "DJANGO_SUPERUSER_PASSWORD" not in os.environ
            else gettext("(the one in DJANGO_SUPERUSER_PASSWORD)")
        )
        self.stdout.write(
            self.style.SUCCESS(
                gettext(
                    "Created the first administrator.\n  URL:      %(url)s\n  Username: %(username)s\n"
                    "  Password: %(password)s\nChange the password after logging in (it is shown only now)."
                )
                % {"url": url, "username": username, "password": shown}
            )
        )
