"""Every command a document marks runnable is one that runs, and ``pixring --help`` leads to the docs.

README.md and docs/*.md mark the shell blocks a reader can paste with the info string
``sh runnable`` (docs/README.md, "Writing these documents"). Each command in them is checked
against what would run it, so a renamed flag, target or module fails here instead of failing
the reader:

* ``pixring ...`` and ``python -m MODULE ...`` (or ``python path/to/module.py``) are parsed by the
  command's own argparse parser, in-process: the parser a module's ``build_parser()`` returns,
  or else the one its ``main()`` builds (``main()`` runs only until it calls ``parse_args``,
  which stops it). A ``pixring balancer`` command without ``--config`` also goes through
  ``--print-config``, so its values are loaded and validated as at start-up.
* ``make TARGET VAR=value``: the target must be one of the Makefile's, the variable one it
  uses, and a variable it hands to a Python command (``$(PY) -m MODULE $(VAR)``) is parsed by
  that command's parser.
* ``locust ...``: options from ``locust --help`` (one subprocess) and those
  ``loadtest/locustfile.py`` adds.
* ``PIXRING_*`` and ``LOCUST_PIXRING_*`` variables set before a command must exist.
* Any other program must be in ``OUTSIDE_TOOLS``; a repository path it names must exist.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from tests.docs import ROOT, Block, documents, fenced_blocks

RUNNABLE = "sh runnable"
PIXRING = {"pixring", ".venv/bin/pixring"}
PYTHON = {"python", "python3", ".venv/bin/python"}
LOCUST = {"locust", ".venv/bin/locust"}
# Programs that are not pixring's: their arguments are their own business, not checked here.
OUTSIDE_TOOLS = {"curl", "jq", "cp", "pkill", "sysctl", "ansible-playbook", "promtool"}
OUTSIDE_MODULES = {"pip", "pytest"}
# A word that starts with one of these names a file of the repository, which must exist.
REPO_DIRS = ("ansible/", "balancer/", "discovery/", "docs/", "loadtest/", "pixring/", "renderer/", "tests/")
_SEPARATORS = {";", "&&", "||", "|", "&"}
_REDIRECTIONS = {"<", ">", ">>"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join([*(f'{k}={v}' for k, v in self.env.items()), *self.argv])}"


def commands(block: Block) -> Iterator[Command]:
    """The commands of a runnable block, each with the line it starts on."""
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        start, logical = i, lines[i]
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + " " + lines[i]
        i += 1
        where = f"{block.path.relative_to(ROOT)}:{block.line + start}"
        lexer = shlex.shlex(logical, posix=True, punctuation_chars=";&|<>()")
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise AssertionError(f"{where}: cannot split the command: {exc}") from None
        words: list[str] = []
        for token in tokens:
            if token.startswith("#"):  # a comment: the rest of the line is prose
                break
            if token in _SEPARATORS:
                if words:
                    yield _command(where, words)
                words = []
            else:
                words.append(token)
        if words:
            yield _command(where, words)


def _command(where: str, words: list[str]) -> Command:
    env: dict[str, str] = {}
    while words and _ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    argv: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in _REDIRECTIONS:
            skip = True
        elif set(word) <= set("();<>|&"):
            raise AssertionError(f"{where}: `{word}` is more shell than this check reads; keep runnable blocks plain")
        else:
            argv.append(word)
    return Command(where, tuple(argv), env)


# --- the parsers of pixring's own commands -------------------------------------------------

class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _parsers_stop_at_parse() -> Iterator[None]:
    """While active, any parser that is asked to parse raises ``_Captured`` with itself."""
    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object):
        raise _Captured(self)

    saved = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    argparse.ArgumentParser.parse_known_args = capture  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = saved


@functools.cache
def parser_for(module_name: str) -> argparse.ArgumentParser:
    """The parser ``python -m module_name`` parses its arguments with."""
    spec = importlib.util.find_spec(module_name)
    if spec is None:
        raise LookupError(f"no module {module_name}")
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        module_name += ".__main__"
    with _parsers_stop_at_parse():
        try:
            module = importlib.import_module(module_name)
            build: Callable[[], argparse.ArgumentParser] | None = getattr(module, "build_parser", None)
            if build is not None:
                return build()
            main = getattr(module, "main", None)
            if main is None:
                raise LookupError(f"{module_name} has neither build_parser() nor main()")
            main()
        except _Captured as captured:
            return captured.parser
    raise LookupError(f"{module_name}'s main() returned without parsing its arguments")


def _without_abbreviations(parser: argparse.ArgumentParser) -> None:
    """A document spells options in full: ``--user`` for ``--users`` would break the day
    another option starts the same way."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _without_abbreviations(subparser)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """None when ``argv`` parses (or asks for help), else argparse's complaint."""
    _without_abbreviations(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            parser.parse_args(list(argv))
    except SystemExit as exit:
        if exit.code in (0, None):
            return None
        lines = err.getvalue().strip().splitlines()
        return lines[-1].partition(": error: ")[2] or lines[-1] if lines else f"exit {exit.code}"
    return None


def _balancer_config_problem(argv: Sequence[str], env: dict[str, str]) -> str | None:
    """Load a ``pixring balancer`` command's configuration as start-up would (``--print-config``)."""
    from pixring.cli.command import main

    ours = {name: value for name, value in env.items() if name.startswith("PIXRING_")}
    saved = {name: value for name, value in os.environ.items() if name.startswith("PIXRING_")}
    err = io.StringIO()
    try:
        for name in saved:
            del os.environ[name]
        os.environ.update(ours)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main([*argv, "--print-config"])
    finally:
        for name in ours:
            os.environ.pop(name, None)
        os.environ.update(saved)
    return None if code == 0 else (err.getvalue().strip() or f"exit {code}")


# --- make ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Makefile:
    targets: frozenset[str]
    variables: frozenset[str]
    handed: dict[tuple[str, str], str]  # (target, variable) -> the module its recipe runs with it


@functools.cache
def makefile() -> Makefile:
    text = (ROOT / "Makefile").read_text()
    targets, handed = set(), {}
    target = None
    for line in text.splitlines():
        rule = re.match(r"^([A-Za-z][\w.-]*)\s*:(?!=)", line)
        if rule:
            target = rule[1]
            targets.add(target)
        elif line.startswith("\t") and target is not None:
            run = re.search(r"-m\s+([\w.]+)\s.*\$\((\w+)\)", line)
            if run:
                handed[(target, run[2])] = run[1]
        elif line.strip() and not line.startswith("#"):
            target = None
    variables = set(re.findall(r"\$\((\w+)\)", text)) | set(re.findall(r"\$\$\{?(\w+)", text))
    variables |= set(re.findall(r"^(\w+)\s*[?:+]?=", text, re.MULTILINE))
    return Makefile(frozenset(targets), frozenset(variables), handed)


def _make_problems(argv: Sequence[str]) -> list[str]:
    make = makefile()
    words = list(argv[1:])
    targets = [word for word in words if not _ASSIGNMENT.match(word) and not word.startswith("-")]
    problems = [f"the Makefile has no target {t!r}" for t in targets if t not in make.targets]
    for word in words:
        if not _ASSIGNMENT.match(word):
            continue
        name, _, value = word.partition("=")
        if name not in make.variables:
            problems.append(f"the Makefile does not use {name}")
        for target in targets:
            module = make.handed.get((target, name))
            if module is not None and (complaint := _parse(parser_for(module), shlex.split(value))):
                problems.append(f"{name}: python -m {module}: {complaint}")
    return problems


# --- locust --------------------------------------------------------------------------------

@functools.cache
def locust_options() -> tuple[frozenset[str], frozenset[str]]:
    """(every option locust with pixring's locustfile accepts, every LOCUST_PIXRING_* variable)."""
    locust = Path(sys.executable).with_name("locust")
    help_text = subprocess.run([str(locust), "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
    source = (ROOT / "loadtest" / "locustfile.py").read_text()
    options = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))
    options |= set(re.findall(r'add\(\s*"(--pixring-[\w-]+)"', source))
    return frozenset(options), frozenset(re.findall(r'env_var="(LOCUST_PIXRING_\w+)"', source))


def _locust_problems(argv: Sequence[str]) -> list[str]:
    options, _ = locust_options()
    return [f"locust has no option {word.split('=')[0]}" for word in argv[1:]
            if word.startswith("-") and word.split("=")[0] not in options]


# --- one command ---------------------------------------------------------------------------

def problems(command: Command) -> list[str]:
    """What is wrong with ``command``: empty when it would run as the document says."""
    from balancer.config import TABLE
    from pixring.cli.command import _renderer_table

    known = {table.env_name(f) for table in (TABLE, _renderer_table()) for f in table.fields}
    known |= {TABLE.config_env, _renderer_table().config_env}
    found: list[str] = []
    for name in command.env:
        if name.startswith("PIXRING_") and name not in known:
            found.append(f"no setting is read from {name}")
        if name.startswith("LOCUST_PIXRING_") and name not in locust_options()[1]:
            found.append(f"the locustfile reads no {name}")
    for word in command.argv:
        path = word.rpartition("=")[2].lstrip("@")
        if path.startswith(REPO_DIRS) and not (ROOT / path).exists():
            found.append(f"no such file in the repository: {path}")
    if not command.argv:
        return found
    program, args = command.argv[0], list(command.argv[1:])
    if program in PIXRING:
        from pixring.cli.command import build_parser

        complaint = _parse(build_parser(), args)
        if complaint:
            found.append(f"pixring: {complaint}")
        elif (args[:1] == ["balancer"] and "PIXRING_CONFIG" not in command.env
              and not {"--config", "-h", "--help"} & {a.split("=")[0] for a in args}):
            if config_problem := _balancer_config_problem(args, command.env):
                found.append(config_problem)
    elif program in PYTHON:
        if args[:1] == ["-m"] and len(args) > 1:
            module, rest = args[1], args[2:]
        elif args[:1] and args[0].endswith(".py"):
            module, rest = args[0][:-3].replace("/", "."), args[1:]
        else:
            return [*found, f"{program}: only `-m MODULE` or a script path are checked"]
        if module.split(".")[0] in OUTSIDE_MODULES:
            return found
        try:
            parser = parser_for(module)
        except (ImportError, LookupError) as exc:
            return [*found, f"python -m {module}: {exc}"]
        if complaint := _parse(parser, rest):
            found.append(f"python -m {module}: {complaint}")
    elif program == "make":
        found += _make_problems(command.argv)
    elif program in LOCUST:
        found += _locust_problems(command.argv)
    elif program not in OUTSIDE_TOOLS:
        found.append(f"{program}: not a command this check knows; if it is not pixring's, add it to OUTSIDE_TOOLS")
    return found


def _runnable(path: Path) -> list[Command]:
    return [command for block in fenced_blocks(path) if block.info == RUNNABLE for command in commands(block)]


@pytest.mark.parametrize("path", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_runnable_command_runs_as_shown(path):
    found = [f"{command}\n    {problem}" for command in _runnable(path) for problem in problems(command)]
    assert not found, "commands that would not run as the document shows:\n" + "\n".join(found)


def test_the_documents_show_runnable_commands_of_every_kind():
    """The check reads something: pixring, python -m, make and locust commands all appear."""
    programs = {command.argv[0] for path in documents() for command in _runnable(path) if command.argv}
    assert programs >= {".venv/bin/pixring", ".venv/bin/python", "make", ".venv/bin/locust"}, programs


def _block(text: str) -> Block:
    return Block(ROOT / "docs" / "example.md", 1, RUNNABLE, text)


@pytest.mark.parametrize("text, complaint", [
    ("pixring balancer --conect-timeout 1\n", "unrecognized arguments: --conect-timeout"),
    ("pixring balancer --node r1=http://127.0.0.1:9001 --balance-factor lots\n", "--balance-factor: 'lots' is not a number"),
    ("pixring renderr --listen 127.0.0.1:9000\n", "invalid choice: 'renderr'"),
    (".venv/bin/python -m loadtest.capacity --users 0\n", "--users"),
    (".venv/bin/python -m loadtest.ring_quality --key 10\n", "unrecognized arguments: --key"),  # abbreviated
    (".venv/bin/python -m loadtest.no_such_tool\n", "no module loadtest.no_such_tool"),
    ("make capacty\n", "no target 'capacty'"),
    ('make capacity CAPACITY_ARGS="--run-time 2m --user 40"\n', "CAPACITY_ARGS: python -m loadtest.capacity"),
    ("make bench BENCHARGS=--soak\n", "does not use BENCHARGS"),
    ("PIXRING_WORKER=2 pixring balancer --help\n", "no setting is read from PIXRING_WORKER"),
    (".venv/bin/locust -f loadtest/locustfile.py --pixring-zpf 1.0\n", "locust has no option --pixring-zpf"),
    ("cp ansible/inventory.sample.yml inventory.yml\n", "no such file in the repository: ansible/inventory.sample.yml"),
    ("wget http://127.0.0.1:8080/\n", "wget: not a command this check knows"),
])
def test_the_check_refuses_what_would_not_run(text, complaint):
    found = [problem for command in commands(_block(text)) for problem in problems(command)]
    assert any(complaint in problem for problem in found), found


def test_commands_split_as_a_shell_splits_them():
    block = _block("make run   # a comment\n"
                   "A=1 B='two words' pixring up --port 8080 && curl -sS 'http://x/?a=1&b=2' | jq .\n"
                   ".venv/bin/python -m loadtest.capacity --host http://127.0.0.1:8080 \\\n"
                   "    --allow-remote\n")
    assert [(c.where.rsplit(":", 1)[1], c.env, c.argv) for c in commands(block)] == [
        ("1", {}, ("make", "run")),
        ("2", {"A": "1", "B": "two words"}, ("pixring", "up", "--port", "8080")),
        ("2", {}, ("curl", "-sS", "http://x/?a=1&b=2")),
        ("2", {}, ("jq", ".")),
        ("3", {}, (".venv/bin/python", "-m", "loadtest.capacity", "--host", "http://127.0.0.1:8080", "--allow-remote")),
    ]



def test_pixring_help_lists_each_command_on_one_line_and_points_to_the_docs(monkeypatch):
    from pixring.cli.command import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    text = parser.format_help()
    commands_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listing = text.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listing[1:]] == list(commands_action.choices), text
    for path in re.findall(r"docs/[\w./-]+\.md", text):
        assert (ROOT / path).exists(), f"pixring --help names {path}, which does not exist"
    assert "docs/README.md" in text
