from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext

from settings_app import credentials
from settings_app.forms import OutgoingEmailSettingsForm


class Command(BaseCommand):
    help = (
        "Generate an RSA 3072 key and a self-signed certificate for the Entra ID certificate credential, as the "
        "page's Generate certificate button does: it becomes the certificate in use, or the pending one while "
        "another is in use. Prints the thumbprint and writes the public certificate (never the key) to --output."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Validity in days (default 365, at most 730).")
        parser.add_argument(
            "--output",
            "-o",
            metavar="PATH",
            default="certificate.pem",
            help="Where to write the public certificate (PEM) to upload to the app registration "
            "(default: certificate.pem).",
        )

    def handle(self, *args, days: int | None, output: str, **options):
        field = OutgoingEmailSettingsForm.base_fields["certificate_days"]
        try:
            days = field.clean(days) or field.initial
        except ValidationError as exc:
            raise CommandError(gettext("--days: %(problem)s") % {"problem": " ".join(exc.messages)}) from None
        path = Path(output)
        if not path.parent.is_dir():
            raise CommandError(gettext("--output: the folder %(folder)s does not exist.") % {"folder": path.parent})
        bundle, installed_as = credentials.generate_and_install(days)
        try:
            path.write_text(bundle.certificate, encoding="ascii")
        except OSError as exc:
            raise CommandError(
                gettext(
                    "The certificate was saved but %(path)s cannot be written (%(reason)s); download it from "
                    "the settings page."
                )
                % {"path": path, "reason": exc.strerror}
            ) from None
        self.stdout.write(bundle.thumbprint)
        if installed_as == "pending":
            note = gettext(
                "Saved as the pending certificate: the one in use keeps working until Save and test passes with it."
            )
        else:
            note = gettext("Saved as the certificate in use.")
        self.stdout.write(
            gettext(
                "%(note)s Public certificate written to %(path)s (valid until %(until)s). Upload it to App "
                "registrations > your app > Certificates & secrets > Certificates > Upload certificate."
            )
            % {"note": note, "path": path, "until": f"{bundle.info.not_after:%Y-%m-%d}"}
        )
