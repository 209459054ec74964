"""docs/cli.md describes every command and option of the ``tablesync`` click group.

The cases are built from the group itself, so a command or option added to the CLI without
documentation (or without help text) fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tablesync.cli._commands import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HEADING = re.compile(r"^## `(tablesync[^`]*)`$", re.M)
DOCUMENTED_OPTION = re.compile(r"^\| `(-[^`\s]+)", re.M)
# Gaps in the CLI's source, each expected to fail its case until it is fixed there.
KNOWN_GAPS: dict[str, str] = {}


def _commands(
    command: click.Command, path: str = "tablesync", parent: click.Context | None = None
) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        context = _context(command, parent)
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, f"{path} {name}", context)


def _context(command: click.Command, parent: click.Context | None = None) -> click.Context:
    # As click builds it when run: context settings (-h) are inherited by subcommands.
    return click.Context(command, parent=parent, **command.context_settings)


def _options(path: str) -> list[click.Option]:
    """The options of the command at ``path``, the help option included."""
    parent: click.Context | None = None
    command: click.Command = cli
    for name in path.split()[1:]:
        parent = _context(command, parent)
        assert isinstance(command, click.Group)
        command = command.commands[name]
    params = command.get_params(_context(command, parent))
    return [param for param in params if isinstance(param, click.Option)]


def _sections() -> dict[str, str]:
    """The text of each ``## `tablesync ...``` section of docs/cli.md, by command path."""
    text = DOC.read_text(encoding="utf-8")
    matches = list(HEADING.finditer(text))
    ends = [match.start() for match in matches[1:]] + [len(text)]
    return {match[1]: text[match.end() : end] for match, end in zip(matches, ends, strict=True)}


def _option_cases() -> list[object]:
    cases: list[object] = []
    for path, _ in _commands(cli):
        for param in _options(path):
            name = f"{path} {param.opts[-1]}"
            gap = KNOWN_GAPS.get(name)
            marks = [pytest.mark.xfail(strict=True, reason=gap)] if gap else []
            cases.append(pytest.param(path, param, id=name, marks=marks))
    return cases


@pytest.mark.parametrize("path", [path for path, _ in _commands(cli)])
def test_every_command_has_a_section_and_help(path: str) -> None:
    command = dict(_commands(cli))[path]
    assert path in _sections(), f"docs/cli.md has no '## `{path}`' section"
    assert command.help and command.help.strip(), f"{path} has no help text"


@pytest.mark.parametrize(("path", "option"), _option_cases())
def test_every_option_is_documented_and_has_help(path: str, option: click.Option) -> None:
    section = _sections().get(path, "")
    for flag in [*option.opts, *option.secondary_opts]:
        assert f"`{flag}" in section, f"docs/cli.md does not describe {flag} under `{path}`"
    assert option.help and option.help.strip(), f"{path} {option.opts[-1]} has no help text"


def test_the_doc_describes_no_option_that_does_not_exist() -> None:
    sections = _sections()
    assert set(sections) == {path for path, _ in _commands(cli)}
    for path, _ in _commands(cli):
        flags = {flag for param in _options(path) for flag in (*param.opts, *param.secondary_opts)}
        documented = set(DOCUMENTED_OPTION.findall(sections[path]))
        assert documented and documented <= flags, (path, sorted(documented - flags))
