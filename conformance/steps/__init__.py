"""The conformance step library: every Gherkin step a scenario of the plan may use, in the
domain's words (the Kazakh Rules and the DES). Each step calls the stack through
``deploy.local.client.StackClient``; none talks HTTP of its own beyond naming a path.

Conventions of the steps:

- Quantities are whole units and may be grouped in threes by spaces (no-break and thin
  spaces too) or commas (``600 000``), in steps and in table cells.
- Unit types are named as the APIs name them: AAU, RMU, ERU_FROM_AAU, ERU_FROM_RMU, CER,
  TCER, LCER; unit types, registry codes and statuses may be written in small letters
  (the steps get them in capitals).
- An account is named in double quotes: a name the scenario gave when it opened it
  (``"Alice"``), a registry and number (``"KZ 1001"``) or a government account by
  registry, type and period (``"KZ Party holding account"``, ``"KZ retirement account
  of period 1"``).
- An operation (``When``) keeps the registry's answer and the transaction it started;
  ``Then`` steps wait for that transaction to be final before they look.
- Before each block of ``When`` steps every registry's books are remembered, so ``Then
  the books of KZ are unchanged`` proves a refused operation moved nothing.

``LIBRARY`` (``conformance/steps/library.py``) lists every step with its pattern and
docstring: the README's step list and the nearest-step suggestions for an unknown step
are made from it. Each module holds one or two families of steps and is a pytest plugin
the runner registers (``MODULES``).
"""

from conformance.steps import (
    broker,
    clock_and_faults,
    expectations,
    information,
    notices,
    operations,
    parties,
    reconciliation,
    registry_under_test,
)
from conformance.steps.library import LIBRARY, TYPES, LibraryStep

#: The library's modules, each a pytest plugin of its family's steps (registered by the
#: runner's conftest), in the order of the README's step list.
MODULES = tuple(module.__name__ for module in (
    parties, operations, notices, clock_and_faults, broker, information, expectations,
    reconciliation, registry_under_test))

__all__ = ["LIBRARY", "MODULES", "TYPES", "LibraryStep"]
