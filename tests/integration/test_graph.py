"""Save and test over Microsoft Graph, through the loopback Entra ID and Graph fakes."""

from __future__ import annotations

import pytest

from settings_app.runner import run_connection_test

pytestmark = pytest.mark.django_db


def steps_of(result) -> list[tuple[str, str, str]]:
    return [(step.name, str(step.status), step.code) for step in result.steps]


def test_smoke(graph_settings, fake_graph):
    result = run_connection_test(graph_settings.to_connection_settings())
    print(steps_of(result), [s.detail for s in result.steps], [s.reply for s in result.steps])
    assert result.outcome == "success"
