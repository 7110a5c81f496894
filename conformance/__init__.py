"""The conformance plan: numbered Gherkin scenarios modelled on DES Annex H, their step
library and runner (README "The conformance plan", docs/adr/0038)."""

import pytest

# the step library's asserts show their values when a scenario fails
pytest.register_assert_rewrite("conformance.steps")
