"""``python -m conformance.library_doc``: the step library as Markdown (the README's step
list is this output), grouped by family, each step with its docstring."""

from __future__ import annotations

from conformance.steps import LIBRARY, MODULES


def markdown() -> str:
    """Every step of ``LIBRARY`` under a heading per family, module by module in the
    order of ``MODULES``, each module's steps in the order it defines them."""
    lines: list[str] = []
    family = ""
    for step in sorted(LIBRARY, key=lambda s: MODULES.index(s.module)):
        if step.family != family:
            family = step.family
            lines += ["", f"#### {family}", ""]
        lines.append(f"- `{step.display}`: {step.doc}")
    return "\n".join(lines).strip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
