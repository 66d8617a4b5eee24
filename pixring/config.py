"""Configuration tables: how every pixring command reads its settings.

A command's settings are a table of ``Field``s, the single source of truth for their
names, types, defaults and help: ``--help``, ``--print-config`` and the configuration
references are all read from it. Every field has one name spelled three ways:
``connect_timeout`` in the TOML file, ``<PREFIX>CONNECT_TIMEOUT`` in the environment
(``PIXRING_`` for the balancer, ``PIXRING_RENDERER_`` for the renderer), and
``--connect-timeout`` on the command line.

Three layers, later ones winning: a TOML file (``--config FILE``, or the variable
``<PREFIX>CONFIG``), then the environment, then flags. A flag left out never hides the
file or the environment: flags default to None and only those given count. Every value
is parsed once, by its field, and one that cannot be used raises ``ConfigError`` naming
the field as its layer spells it (``PIXRING_WORKERS``, ``--workers``, ``workers`` in the
file); the commands turn that into exit code 2. Nothing else parses configuration text.

``Loader`` keeps a command line's file, environment and flags, so that a SIGHUP reads the
file again under the same environment and flags. The value parsers at the end are the
types the tables share.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "Address",
    "ConfigError",
    "Field",
    "Loader",
    "Table",
    "boolean",
    "choice",
    "fraction",
    "human_size",
    "non_negative_float",
    "non_negative_int",
    "parse_address",
    "plain",
    "positive",
    "read_secret_file",
    "redact_userinfo",
    "size",
    "string_list",
]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    metavar: str = ""
    repeatable: bool = False  # a flag that may be given several times (--node)
    secret: bool = False  # never printed by --print-config or /status
    flag: str = ""  # the command-line spelling when it is not --<name>
    switch: bool = False  # a boolean flag given bare: --name sets it, --no-name clears it
    reload: bool = False  # a SIGHUP applies it to the running process (commands that reload field by field)
    shown_default: str = ""  # the default as --help and the reference say it, when not the value itself


def default_text(field: Field) -> str:
    """The default as a person reads it: ``none`` for nothing, lists joined with commas."""
    if field.shown_default:
        return field.shown_default
    value = field.default
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    if value in ("", None):
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def plain(value: Any) -> Any:
    """A parsed value in a form TOML, JSON and the field's own parser all read back."""
    if isinstance(value, (Address, Path)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    return value


class Table:
    """One command's fields, with the environment prefix that command reads."""

    def __init__(self, fields: Iterable[Field], env_prefix: str) -> None:
        self.fields = tuple(fields)
        self.env_prefix = env_prefix
        self._by_name = {field.name: field for field in self.fields}
        if len(self._by_name) != len(self.fields):
            raise ValueError("two fields of one table share a name")

    @property
    def config_env(self) -> str:
        """The variable naming the config file when ``--config`` is not given."""
        return self.env_prefix + "CONFIG"

    def env_name(self, field: Field) -> str:
        return self.env_prefix + field.name.upper()

    @staticmethod
    def flag_name(field: Field) -> str:
        return field.flag or "--" + field.name.replace("_", "-")

    # -- reading ---------------------------------------------------------------------------

    def read_toml(self, path: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
        unknown = sorted(set(data) - set(self._by_name))
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown field {unknown[0]!r} (known: {', '.join(sorted(self._by_name))})"
            )
        return data

    def load(
        self,
        *,
        config_file: str | None = None,
        environ: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every field's value: the default, then the file, the environment and the flags.

        ``flags`` holds the fields given on the command line; a None value counts as not given.
        """
        environ = os.environ if environ is None else environ
        layers: list[tuple[str, Mapping[str, Any]]] = []
        if config_file:
            layers.append((f"config file {config_file}", self.read_toml(config_file)))
        layers.append(("environment", {f.name: environ[self.env_name(f)] for f in self.fields
                                       if self.env_name(f) in environ}))
        layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))
        values: dict[str, Any] = {field.name: field.default for field in self.fields}
        for origin, layer in layers:
            for name, raw in layer.items():
                field = self._by_name.get(name)
                if field is None:
                    raise ConfigError(f"{origin}: unknown field {name!r}")
                values[name] = self._parse(field, raw, origin)
        return values

    def _parse(self, field: Field, raw: Any, origin: str) -> Any:
        where = {"environment": self.env_name(field), "command line": self.flag_name(field)}.get(origin, field.name)
        try:
            return field.parse(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{origin}: {where}: {exc}") from None

    def printable(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` for people (``--print-config``): plain values, secrets masked."""
        out = {}
        for field in self.fields:
            value = plain(values[field.name])
            out[field.name] = "(set)" if field.secret and value else value
        return out

    # -- the command line ------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--config``, ``--print-config`` and one flag per field, all defaulting to None."""
        parser.add_argument(
            "--config", metavar="FILE", default=None,
            help=f"TOML config file (or {self.config_env}); {self.env_prefix}* environment variables override it "
            "and flags override both (default: none)",
        )
        parser.add_argument("--print-config", action="store_true",
                            help="print the effective configuration as JSON and exit")
        for field in self.fields:
            applied = "; a SIGHUP applies it" if field.reload else ""
            text = f"{field.help} (default: {default_text(field)}; env {self.env_name(field)}{applied})"
            if field.switch:
                parser.add_argument(self.flag_name(field), dest=field.name, default=None,
                                    action=argparse.BooleanOptionalAction, help=text)
            else:
                parser.add_argument(self.flag_name(field), dest=field.name, metavar=field.metavar or None,
                                    action="append" if field.repeatable else "store", default=None, help=text)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields given on the command line ``args`` was parsed from."""
        return {f.name: getattr(args, f.name) for f in self.fields if getattr(args, f.name, None) is not None}

    # -- documentation ---------------------------------------------------------------------

    def reference(self, *, reload_column: bool = False) -> str:
        """The table as Markdown: TOML name, flag, variable, default, help (and, for a
        command that reloads field by field, what a SIGHUP does with each)."""
        head = "| TOML field | flag | environment | default |" + (" on SIGHUP |" if reload_column else "")
        lines = [head + " what it does |", "|---|---|---|---|" + ("---|" if reload_column else "") + "---|"]
        for field in self.fields:
            flag = self.flag_name(field) + (f" {field.metavar}" if field.metavar else "")
            if field.switch:
                flag += f"`, `--no-{self.flag_name(field)[2:]}"
            default = default_text(field)
            default = default if default == "none" or field.shown_default else f"`{default}`"
            cells = [f"`{field.name}`", f"`{flag}`", f"`{self.env_name(field)}`", default]
            if reload_column:
                cells.append("applied" if field.reload else "needs a restart")
            cells.append(field.help)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")  # a bare | ends a cell
        return "\n".join(lines)


class Loader:
    """A table bound to one start: its config file, environment and flags, read again on demand
    (a SIGHUP reads the file again; the environment and the flags are those of the start)."""

    def __init__(self, table: Table, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
        environ = dict(os.environ if environ is None else environ)
        self.table = table
        self.config_file: str | None = getattr(args, "config", None) or environ.get(table.config_env) or None
        self.environ = environ
        self.flags = table.given(args)

    def load(self) -> dict[str, Any]:
        return self.table.load(config_file=self.config_file, environ=self.environ, flags=self.flags)


# -- value parsers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: Any) -> Address:
    """``HOST:PORT`` (IPv6 as ``[::1]:8080``); port 0 means "any free port"."""
    if isinstance(text, Address):
        return text
    text = str(text).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return Address(host, int(port_text))


def read_secret_file(path: str) -> str:
    """A token kept in a file, stripped of surrounding whitespace. Deployments keep secrets
    in files: a flag's value is in /proc/*/cmdline for every local user to read."""
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not token:
        raise ValueError(f"{path} is empty")
    return token


def redact_userinfo(address: str) -> str:
    """``address`` as printed: a ``user:password@`` in it (a Consul address may carry one)
    becomes ``(redacted)@``, so no log line, /status or --print-config shows the password."""
    scheme, sep, rest = address.rpartition("://")
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return address
    return f"{scheme}{sep}(redacted)@{authority.rpartition('@')[2]}{slash}{path}"


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None


def positive(kind: type) -> Callable[[Any], Any]:
    """A number > 0: ``positive(int)`` for a whole one, ``positive(float)`` for a finite one."""
    def parse(value: Any) -> Any:
        number = _whole(value) if kind is int else _number(value)
        if not number > 0 or number == math.inf:
            raise ValueError(f"{value!r} must be a positive number" if kind is float else f"{value!r} must be at least 1")
        return number

    return parse


def non_negative_int(value: Any) -> int:
    number = _whole(value)
    if number < 0:
        raise ValueError(f"{value!r} must be >= 0")
    return number


def non_negative_float(value: Any) -> float:
    number = _number(value)
    if not number >= 0 or number == math.inf:
        raise ValueError(f"{value!r} must be a finite number >= 0")
    return number


def fraction(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{value!r} must be between 0 and 1")
    return number


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def string_list(value: Any) -> tuple[str, ...]:
    """A list, or one comma-separated string (the environment's and a flag's form)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(value: Any) -> int:
    """Bytes: a whole number, or text with a binary K/M/G suffix (``64M`` = 64 MiB; a trailing B is fine)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        cleaned = str(value).strip().lower().removesuffix("ib").removesuffix("b")
        unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
        digits = cleaned[: len(cleaned) - len(unit)]
        try:
            number = int(float(digits) * _UNITS[unit]) if digits else -1
        except (ValueError, OverflowError):
            number = -1
    if number < 0:
        raise ValueError(f"{value!r} is not a size in bytes (e.g. 1048576, 512K, 64M, 2G)")
    return number


def human_size(value: int) -> str:
    """``size``'s inverse for round numbers: 134217728 -> ``128M``."""
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)
