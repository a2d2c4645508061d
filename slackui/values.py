"""How a variable's value reads in Slack: the way a playbook author writes it in YAML/JSON.

Python's own `str()` shows `True`, `None` and `{'a': 1}`; playbooks, sidecars and the
`key=value` syntax say `true`, `null` and `{"a": 1}`. Callers escape the result as any text.
"""

from __future__ import annotations

import json
from typing import Any


def shown_value(value: Any) -> str:
    """`value` as written in a playbook's variables: booleans lower-case, JSON for the rest."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return str(value)
