"""Every scenario of the plan's feature files (conformance/features), as pytest tests."""

from pytest_bdd import scenarios

scenarios("features")
