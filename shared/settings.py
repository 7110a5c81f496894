"""Helpers of the settings classes (pydantic-settings) every service shares."""

from __future__ import annotations

import json
from typing import Any


def comma_or_json_list(value: Any) -> Any:
    """Read a list setting given as JSON (``["KZ","JP"]``) or comma-separated (``KZ,JP``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value
