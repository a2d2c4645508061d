"""Extra vars typed in chat: parsed, checked against the playbook's declarations, kept as data.

Rules (product.md "Safety rules"):
- keys must be declared in `playbooks.variables` unless the playbook sets `allow_free_vars`;
  values are coerced to the declared type and checked (choices, required, min/max, pattern);
  defaults are applied;
- Ansible's connection and magic variables (`ansible_*`, `hostvars`, `inventory_*`,
  `playbook_dir`, `role_*`, `omit`, `environment`, `vars`...) and every name Ansible reserves
  for play keywords or template globals (`become`, `delegate_to`, `lookup`...) are refused,
  declared or not: a variable of that name would change how or where Ansible runs;
- secret-looking keys, and variables declared `secret: true`, are refused with advice (Ansible
  Vault, or the worker's environment variable `PLAYBOT_VAR_<NAME>`); so are values that are
  plainly secrets (Slack/GitHub tokens, private keys);
- values are data: a value containing `{{`, `{%` or `{#` is kept as a literal string (the
  worker hands it to Ansible marked unsafe, so it is never templated); values and counts are
  bounded.

`parse_assignments` splits `key=value` tokens (the caller has already split the command text
with shlex); `validate` returns the typed, complete mapping to store on the job, or raises
`InvalidVars` listing every problem at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.audit import contains_plain_secret, is_secret_key
from core.errors import InvalidVars
from core.suggestions import closest
from db.models import Playbook

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_KEY_LENGTH = 64
MAX_VALUE_BYTES = 4096
MAX_VARS = 50
MAX_LIST_ITEMS = 100
TYPES = ("string", "integer", "number", "boolean", "choice", "list")
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}

# Ansible magic variables (docs "Special Variables") and connection variables beyond the
# `ansible_` prefix, which is refused as a whole.
MAGIC_VARIABLES = frozenset({
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "inventory_file", "omit", "play_hosts", "playbook_dir", "role_name",
    "role_names", "role_path", "role_uuid", "environment", "vars", "item", "play_name",
    "play_role_names", "play_batch",
})
FORBIDDEN_PREFIXES = ("ansible_", "inventory_", "role_", "play_", "hostvars", "_ansible")
# ansible.vars.reserved.get_reserved_names() of ansible-core (play/role/block/task keywords
# and template globals), vendored because importing it loads most of Ansible (~0.8 s).
# tests/core/test_extra_vars.py checks that this stays a superset of the installed version.
ANSIBLE_RESERVED_NAMES = frozenset({
    "action", "always", "any_errors_fatal", "args", "async", "async_val", "become",
    "become_exe", "become_flags", "become_method", "become_user", "block", "changed_when",
    "check_mode", "collections", "connection", "cycler", "debugger", "delay", "delegate_facts",
    "delegate_to", "dict", "diff", "environment", "fact_path", "failed_when", "force_handlers",
    "gather_facts", "gather_subset", "gather_timeout", "handlers", "hosts", "ignore_errors",
    "ignore_unreachable", "include", "joiner", "lipsum", "local_action", "lookup", "loop",
    "loop_control", "loop_with", "max_fail_percentage", "module_defaults", "name", "namespace",
    "no_log", "notify", "now", "omit", "order", "poll", "port", "post_tasks", "pre_tasks", "q",
    "query", "range", "register", "remote_user", "rescue", "retries", "roles", "run_once",
    "serial", "strategy", "tags", "tasks", "throttle", "timeout", "undef", "until", "vars",
    "vars_files", "vars_prompt", "when", "with_",
})
# Jinja literals: a variable named like these would only confuse.
_JINJA_LITERALS = frozenset({"true", "false", "none"})
# A declared variable of these types cannot carry a secret, whatever its name.
_SAFE_DECLARED_TYPES = frozenset({"choice", "boolean"})

SECRET_ADVICE = (
    "Secrets do not belong in chat. Put them in Ansible Vault, or give them to the worker as "
    "the environment variable PLAYBOT_VAR_{upper} and declare the variable `secret: true` in "
    "the playbook's .playbot.yml."
)


def forbidden_reason(key: str) -> str | None:
    """Why `key` may never be set from chat (an Ansible magic/reserved name), or None."""
    lowered = key.lower()
    if lowered.startswith(FORBIDDEN_PREFIXES):
        return "Ansible connection and magic variables cannot be set from chat"
    if lowered in MAGIC_VARIABLES:
        return "it is an Ansible magic variable"
    if lowered in ANSIBLE_RESERVED_NAMES:
        return "Ansible reserves this name (a play keyword or template function)"
    if lowered in _JINJA_LITERALS:
        return "it is a Jinja literal"
    return None


def parse_assignments(tokens: Iterable[str]) -> dict[str, str]:
    """`["version=1.2", "note=a=b", "empty="]` → `{"version": "1.2", "note": "a=b", "empty": ""}`.

    Raises InvalidVars for a token without `=`, a malformed key or a key given twice.
    """
    result: dict[str, str] = {}
    problems: list[str] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            problems.append(f"`{_short(token)}` is not `key=value`.")
            continue
        if not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            problems.append(
                f"`{_short(key) or '(empty)'}` is not a valid variable name (letters, digits "
                f"and `_`, not starting with a digit, at most {MAX_KEY_LENGTH} characters)."
            )
            continue
        if key in result:
            problems.append(f"`{key}` is given more than once.")
            continue
        result[key] = value
    if len(result) > MAX_VARS:
        problems.append(f"Too many variables ({len(result)}); at most {MAX_VARS}.")
    if problems:
        raise InvalidVars(_message("Could not read the extra vars", problems))
    return result


def validate(playbook: Playbook, raw: Mapping[str, Any], *, source: str = "chat") -> dict[str, Any]:
    """The typed, complete extra vars for a run of `playbook`, from what the user gave.

    raw: key → value as typed (strings), or native values from a modal or a retried job.
    source: where the values came from ("chat", "modal", "retry"), used in messages.
    Returns declared defaults for what was not given (secret variables are never included:
    the worker supplies them). Raises InvalidVars listing every problem.
    """
    declared: dict[str, dict[str, Any]] = {
        str(k): (v if isinstance(v, Mapping) else {}) for k, v in (playbook.variables or {}).items()
    }
    problems: list[str] = []
    values: dict[str, Any] = {}
    where = "in a retry" if source == "retry" else "in chat"
    if len(raw) > MAX_VARS:
        raise InvalidVars(f"Too many variables ({len(raw)}); at most {MAX_VARS}.")
    unknown: list[str] = []
    settled: set[str] = set()  # keys given (valid or not) that need no default
    for key, value in raw.items():
        key = str(key)
        settled.add(key)
        if not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
            problems.append(f"`{_short(key)}` is not a valid variable name.")
            continue
        reason = forbidden_reason(key)
        if reason:
            problems.append(f"`{key}` is refused: {reason}.")
            continue
        spec = declared.get(key)
        if spec is not None and spec.get("secret"):
            problems.append(f"`{key}` is a secret variable and cannot be given {where}. "
                            + SECRET_ADVICE.format(upper=key.upper()))
            continue
        if is_secret_key(key) and (spec is None or _type(spec) not in _SAFE_DECLARED_TYPES):
            problems.append(f"`{key}` looks like a secret. "
                            + SECRET_ADVICE.format(upper=key.upper()))
            continue
        if spec is None and not playbook.allow_free_vars:
            unknown.append(key)
            continue
        if spec is not None and isinstance(value, str) and value.strip() == "":
            if spec.get("required"):
                problems.append(f"`{key}` is required and cannot be empty{_describe(spec)}.")
                continue
            if _type(spec) != "string":
                settled.discard(key)
                continue  # an empty optional value means "not given": the default applies
        try:
            coerced = _coerce(key, value, spec or {"type": "string"})
        except ValueError as exc:
            problems.append(str(exc))
            continue
        values[key] = coerced
    if unknown:
        public = sorted(k for k, spec in declared.items() if not spec.get("secret"))
        for key in unknown:
            hint = closest(key, public)
            problems.append(f"`{key}` is not a variable of `{playbook.name}`"
                            + (f" (did you mean {_codes(hint)}?)" if hint else "") + ".")
        declares = _codes(public) if public else "no variables"
        problems.append(f"`{playbook.name}` declares: {declares}.")
    for key, spec in declared.items():
        if key in values or key in settled or spec.get("secret"):
            continue
        if "default" in spec and spec["default"] is not None:
            try:
                values[key] = _coerce(key, spec["default"], spec)
            except ValueError:
                values[key] = spec["default"]  # the author's default, kept as declared
        elif spec.get("required"):
            problems.append(f"`{key}` is required{_describe(spec)}.")
    if problems:
        raise InvalidVars(_message(f"Invalid extra vars for `{playbook.name}`", problems))
    return values


def _type(spec: Mapping[str, Any]) -> str:
    kind = str(spec.get("type") or ("choice" if spec.get("choices") else "string")).lower()
    return kind if kind in TYPES else "string"


def _coerce(key: str, value: Any, spec: Mapping[str, Any]) -> Any:
    """The value converted to the declared type; ValueError with a user-facing message."""
    kind = _type(spec)
    if isinstance(value, str):
        _check_text(key, value)
    if kind == "string":
        return _string(key, value, spec)
    if kind == "integer":
        return _bounded(key, _integer(key, value), spec)
    if kind == "number":
        return _bounded(key, _number(key, value), spec)
    if kind == "boolean":
        return _boolean(key, value)
    if kind == "choice":
        return _choice(key, value, spec)
    return _list(key, value, spec)


def _check_text(key: str, text: str) -> None:
    if len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise ValueError(f"`{key}` is too long (at most {MAX_VALUE_BYTES} bytes).")
    if "\x00" in text:
        raise ValueError(f"`{key}` contains a NUL character.")
    if contains_plain_secret(text):
        raise ValueError(f"`{key}` looks like it holds a secret (a token or private key). "
                         + SECRET_ADVICE.format(upper=key.upper()))


def _string(key: str, value: Any, spec: Mapping[str, Any]) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"`{key}` must be text.")
    text = str(value)
    min_length, max_length = spec.get("min_length"), spec.get("max_length")
    if isinstance(min_length, int) and len(text) < min_length:
        raise ValueError(f"`{key}` must be at least {min_length} characters.")
    if isinstance(max_length, int) and len(text) > max_length:
        raise ValueError(f"`{key}` must be at most {max_length} characters.")
    pattern = spec.get("pattern")
    if pattern:
        try:
            matched = re.fullmatch(str(pattern), text)
        except re.error:
            matched = None
        if matched is None:
            raise ValueError(f"`{key}`: `{_short(text)}` does not match the pattern "
                             f"`{pattern}`{_help(spec)}.")
    return text


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"`{key}` must be a whole number, not `{value}`.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", text):
        raise ValueError(f"`{key}` must be a whole number, not `{_short(str(value))}`.")
    return int(text)


def _number(key: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError(f"`{key}` must be a number, not `{value}`.")
    if isinstance(value, int | float):
        number: float | int = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
            raise ValueError(f"`{key}` must be a number, not `{_short(str(value))}`.")
        number = float(text)
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"`{key}` must be a finite number.")
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _bounded(key: str, number: int | float, spec: Mapping[str, Any]) -> int | float:
    low, high = spec.get("min"), spec.get("max")
    if isinstance(low, int | float) and not isinstance(low, bool) and number < low:
        raise ValueError(f"`{key}` must be at least {low} (got {number}).")
    if isinstance(high, int | float) and not isinstance(high, bool) and number > high:
        raise ValueError(f"`{key}` must be at most {high} (got {number}).")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"`{key}` must be true or false, not `{_short(str(value))}`.")


def _choice(key: str, value: Any, spec: Mapping[str, Any]) -> Any:
    choices = list(spec.get("choices") or [])
    for choice in choices:
        if choice == value or str(choice) == str(value):
            return choice
    names = [str(c) for c in choices]
    hint = closest(str(value), names)
    raise ValueError(f"`{key}` must be one of {_codes(names)}, not `{_short(str(value))}`"
                     + (f" (did you mean {_codes(hint)}?)" if hint else "") + ".")


def _list(key: str, value: Any, spec: Mapping[str, Any]) -> list[Any]:
    if isinstance(value, list | tuple):
        items = [str(v).strip() if not isinstance(v, str) else v.strip() for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    items = [item for item in items if item]
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"`{key}` has too many items (at most {MAX_LIST_ITEMS}).")
    for item in items:
        _check_text(key, item)
    if spec.get("choices"):
        items = [_choice(key, item, spec) for item in items]
    low, high = spec.get("min"), spec.get("max")
    if isinstance(low, int) and len(items) < low:
        raise ValueError(f"`{key}` needs at least {low} items.")
    if isinstance(high, int) and len(items) > high:
        raise ValueError(f"`{key}` takes at most {high} items.")
    return items


def _describe(spec: Mapping[str, Any]) -> str:
    kind = _type(spec)
    what = (f"one of {_codes([str(c) for c in spec.get('choices') or []])}"
            if kind == "choice" else kind)
    description = spec.get("description")
    return f" ({what}: {description})" if description else f" ({what})"


def _help(spec: Mapping[str, Any]) -> str:
    description = spec.get("description")
    return f" ({description})" if description else ""


def _codes(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(title: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{title}: {problems[0]}"
    return f"{title}:\n" + "\n".join(f"• {p}" for p in problems)
