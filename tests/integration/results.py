"""Running the connection test on saved settings and reading its failed step, for finding tests."""

from __future__ import annotations

from settings_app.models import OutgoingEmailSettings
from settings_app.runner import run_connection_test


def failed_step(record: OutgoingEmailSettings, **kwargs):
    """The first failed step of a connection test on ``record``; fails the test when none failed."""
    result = run_connection_test(record.to_connection_settings(), **kwargs)
    step = result.failed_step
    assert step is not None, [(s.name, s.status) for s in result.steps]
    return step


def commands(step) -> str:
    """The PowerShell (or other) commands of a failed step's fixes, one block after the other."""
    return "\n".join(fix.command for fix in step.finding.fixes)
