"""Servers and playbooks: lists (with the filters used) and one item in detail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db.models import Job, Playbook, Server
from slackui.blocks import Block, context, escape, fields, header, section
from slackui.jobs import job_line
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks, more_note, take
from slackui.modals import secret_env_name
from slackui.values import shown_value

ENV_EMOJI = {"production": ":red_circle:", "staging": ":large_orange_circle:",
             "development": ":large_green_circle:"}
LIST_LIMIT = 40


def _filters_text(filters: Mapping[str, str]) -> str:
    return " ".join(f"`{k}:{escape(v)}`" for k, v in filters.items() if v)


def server_line(server: Server) -> str:
    tags = " ".join(f"`{escape(t)}`" for t in server.tags or [])
    inactive = " · _inactive_" if not server.is_active else ""
    return (f"{ENV_EMOJI.get(server.environment.value, '')} *{escape(server.hostname)}* · "
            f"{server.environment.value}{' · ' + tags if tags else ''}{inactive}")


def server_list_blocks(servers: Sequence[Server], *, filters: Mapping[str, str]) -> list[Block]:
    shown, hidden = take(servers, LIST_LIMIT)
    title = "Servers"
    blocks: list[Block] = [header(title)]
    if filters:
        blocks.append(context(f"Filtered by {_filters_text(filters)}"))
    if not shown:
        blocks.append(section("No servers match."))
    else:
        blocks.append(section("\n".join(server_line(s) for s in shown)))
        if hidden:
            blocks.append(context(more_note(hidden, "more servers; narrow with env:, tag: or group:")))
    blocks.append(context("`/servers env:&lt;environment&gt; tag:&lt;tag&gt; group:&lt;group&gt;` · "
                          "`/servers show &lt;host&gt;`"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def server_details_blocks(server: Server, recent_jobs: Sequence[Job] = ()) -> list[Block]:
    address = server.ip_address or server.hostname
    blocks: list[Block] = [
        header(f"Server {server.hostname}"),
        fields([
            ("Environment", f"{ENV_EMOJI.get(server.environment.value, '')} "
                            f"{server.environment.value}"),
            ("Tags", " ".join(f"`{escape(t)}`" for t in server.tags or []) or "—"),
            ("Address", "— (runs on the worker itself)" if server.connection == "local"
             else f"{escape(address)}:{server.ssh_port}"),
            ("Connection", escape(server.connection)),
            ("OS", escape(" ".join(x for x in (server.os_type, server.os_version) if x) or "—")),
            ("Active", "yes" if server.is_active else "no"),
        ]),
    ]
    if server.description:
        blocks.append(section(escape(server.description)))
    if recent_jobs:
        blocks.append(section("*Recent jobs*\n" + "\n".join(job_line(j) for j in recent_jobs)))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def playbook_line(playbook: Playbook) -> str:
    tags = " ".join(f"`{escape(t)}`" for t in playbook.tags or [])
    desc = f" — {escape(playbook.description)}" if playbook.description else ""
    return f"*{escape(playbook.name)}*{desc}{' · ' + tags if tags else ''}"


def playbook_list_blocks(playbooks: Sequence[Playbook], *,
                         filters: Mapping[str, str]) -> list[Block]:
    shown, hidden = take(playbooks, LIST_LIMIT)
    blocks: list[Block] = [header("Playbooks")]
    if filters:
        blocks.append(context(f"Filtered by {_filters_text(filters)}"))
    if not shown:
        blocks.append(section("No playbooks match."))
    else:
        blocks.append(section("\n".join(playbook_line(p) for p in shown)))
        if hidden:
            blocks.append(context(more_note(hidden, "more playbooks; narrow with tag:")))
    blocks.append(context("`/playbooks tag:&lt;tag&gt;` · `/playbooks show &lt;name&gt;` · "
                          "`/run-playbook &lt;name&gt; &lt;target&gt; key=value`"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def variable_line(name: str, spec: Mapping[str, Any]) -> str:
    kind = spec.get("type", "string")
    parts = [f"`{escape(name)}` ({escape(kind)}"]
    if spec.get("required"):
        parts.append(", required")
    if spec.get("choices"):
        parts.append(", one of " + "/".join(escape(shown_value(c)) for c in spec["choices"]))
    if spec.get("min") is not None or spec.get("max") is not None:
        parts.append(f", {spec.get('min', '')}..{spec.get('max', '')}")
    if spec.get("default") is not None:
        parts.append(f", default `{escape(shown_value(spec['default']))}`")
    parts.append(")")
    if spec.get("secret"):
        parts.append(f" :lock: secret, from `{secret_env_name(name)}` on the worker")
    if spec.get("description"):
        parts.append(f" — {escape(spec['description'])}")
    return "".join(parts)


def playbook_details_blocks(playbook: Playbook) -> list[Block]:
    variables = playbook.variables or {}
    blocks: list[Block] = [
        header(f"Playbook {playbook.name}"),
        fields([
            ("Tags", " ".join(f"`{escape(t)}`" for t in playbook.tags or []) or "—"),
            ("File", f"`{escape(playbook.file_path)}`"),
            ("SHA-256", f"`{playbook.file_hash[:12]}…`"),
            ("Time limit", f"{playbook.timeout_seconds}s" if playbook.timeout_seconds
             else "default"),
            ("Undeclared variables", "accepted" if playbook.allow_free_vars else "refused"),
            ("Active", "yes" if playbook.is_active else "no"),
        ]),
    ]
    if playbook.description:
        blocks.append(section(escape(playbook.description)))
    if variables:
        blocks.append(section("*Variables*\n" + "\n".join(
            variable_line(name, spec or {}) for name, spec in variables.items())))
    example = " ".join(f"{name}=…" for name, spec in variables.items()
                       if (spec or {}).get("required") and not (spec or {}).get("secret"))
    blocks.append(context(f"`/run-playbook {escape(playbook.name)} &lt;target&gt;"
                          f"{' ' + example if example else ''} [--check]`"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
