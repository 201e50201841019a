"""The docstring examples of the metrics modules run and print what they show."""

from __future__ import annotations

import doctest

import pytest

from loglib.analysis import alerts, metrics
from loglib.sources import _series, grafana, prometheus


@pytest.mark.parametrize("module", [prometheus, grafana, _series, metrics, alerts], ids=lambda m: m.__name__)
def test_examples(module: object) -> None:
    """Every example in the module's docstrings gives the output written under it."""
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
