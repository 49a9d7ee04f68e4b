"""YAML configs merged in order, dotted CLI overrides, and one-line errors that name the file and the key.

`sweagent run --config a.yaml --config b.yaml --agent.model.name gpt-4o` loads a.yaml, merges b.yaml over it,
then sets agent.model.name. A file may start from others (`extends: local_demo.yaml`, a path relative to the file,
or a list of them), which are merged first, so an overlay holds only what differs. Strings may use `${VAR}` or
`${VAR:-default}` to read the environment at load time (API keys should use `$VAR` instead, which is resolved only when a request is made, so it is never dumped). What
`${VAR}` puts into a header, an `env` mapping or a secret-named key is registered with `sweagent.utils.secrets` and
masked by value in every output.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from sweagent import REPO_ROOT
from sweagent.utils.errors import OECError, user_key_path
from sweagent.utils.secrets import MASK, redact_data, register_secret
from sweagent.utils.yaml_text import load_yaml

T = TypeVar("T", bound=BaseModel)
COMMAND_LINE = "command line"
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|auth[_-]?token|access[_-]?token)$", re.IGNORECASE)
_SECRET_FIELDS = {"extra_headers", "headers", "env"}


class ConfigError(OECError):
    """A config that cannot be used; the message is one line naming the source and the key path."""


def resolve_config_path(path: str | Path) -> Path:
    """Config paths work from any directory: as given, else relative to the OEC repository."""
    candidate = Path(path)
    if candidate.exists() or candidate.is_absolute():
        return candidate
    return REPO_ROOT / candidate


def _carries_secrets(path: tuple[str, ...]) -> bool:
    """A request header, an `env` mapping below the top level (`env.deployment.env`) or a secret-named key."""
    return bool(_SECRET_FIELDS.intersection(path[1:-1])) or bool(path and _SECRET_KEY.search(path[-1]))


def _expand_env(value: Any, path: tuple[str, ...] = ()) -> Any:
    """Expand `${VAR}` in strings; what lands in a secret-bearing field is registered to be masked by value."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name, default = match["name"], match["default"]
            if name in os.environ:
                if _carries_secrets(path):
                    register_secret(os.environ[name])
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable {name} is not set and has no default (${{{name}:-default}})")

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _expand_env(item, (*path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, (*path, str(index))) for index, item in enumerate(value)]
    return value


def _register_secret_keys(data: Any) -> None:
    """Values of secret-named keys (`api_key`, `x-api-key`, `password`) are masked wherever else they show up."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and _SECRET_KEY.search(str(key)):
                register_secret(value)
            _register_secret_keys(value)
    elif isinstance(data, list):
        for item in data:
            _register_secret_keys(item)


def _same_variant(old: Any, new: Any) -> bool:
    """Both mappings of one union variant: a dict that names another `type` replaces the old one, keys and all."""
    return isinstance(old, dict) and isinstance(new, dict) and new.get("type", old.get("type")) == old.get("type")


def _merge(base: dict[str, Any], update: dict[str, Any], origin: str, origins: dict[tuple[str, ...], str], prefix: tuple[str, ...] = ()) -> None:
    for key, value in update.items():
        path = (*prefix, str(key))
        if _same_variant(base.get(key), value):
            _merge(base[key], value, origin, origins, path)
        else:
            base[key] = value
            origins[path] = origin


def _set_path(data: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set `a.b.0.c` in nested dicts and lists (a number indexes a list that already exists)."""
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{COMMAND_LINE}: key '{'.'.join(parts)}': '{part}' is not an index of the list at '{'.'.join(parts[:depth])}'")
            node = node[int(part)]
            continue
        child = node.get(part)
        if not isinstance(child, (dict, list)):
            child = node[part] = {}
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{COMMAND_LINE}: key '{'.'.join(parts)}': '{last}' is not an index of the list")
        node[int(last)] = value
    elif isinstance(value, dict) and _same_variant(node.get(last), value):
        _merge(node[last], value, COMMAND_LINE, {})
    elif last == "type" and value != node.get("type") and set(node) - {"type"}:
        # `--x.type other` picks another variant of a union, as a file naming another type does (see _merge): the
        # old variant's keys do not apply; keys given after it on the command line do.
        node.clear()
        node["type"] = value
    else:
        node[last] = value


def load_yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _with_bases(config_files: list[Path], chain: tuple[Path, ...] = ()) -> list[Path]:
    """The files to merge, in order: each file after the files its `extends` names (recursively)."""
    ordered: list[Path] = []
    for path in config_files:
        if path.resolve() in chain:
            raise ConfigError(f"{path}: key 'extends': the files extend each other in a circle")
        bases = load_yaml_file(path).get("extends", []) if path.is_file() else []
        bases = [bases] if isinstance(bases, str) else bases
        if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
            raise ConfigError(f"{path}: key 'extends': expected a config file path or a list of them")
        for base in bases:
            if not (path.parent / base).is_file():
                raise ConfigError(f"{path}: key 'extends': config file '{path.parent / base}' does not exist")
        ordered += _with_bases([path.parent / base for base in bases], (*chain, path.resolve())) + [path]
    return ordered


def parse_override_value(text: str) -> Any:
    """`3` → 3, `true` → True, `[1, 2]` → list; anything else stays the string it is."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, (dict, list)) and not text.lstrip().startswith(("[", "{")):
        return text
    return text if value is None and text.strip() not in {"null", "~", ""} else value


def parse_cli(argv: list[str]) -> tuple[list[Path], list[tuple[str, Any]]]:
    """Split `--config F` (repeatable) from `--dotted.key value` overrides (values as typed; `build_config` reads them)."""
    configs: list[Path] = []
    overrides: list[tuple[str, Any]] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if not token.startswith("--"):
            raise ConfigError(f"{COMMAND_LINE}: unexpected argument '{token}' (options look like --agent.model.name VALUE)")
        key, _, inline = token[2:].partition("=")
        if inline or "=" in token:
            value, index = inline, index + 1
        elif index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            value, index = argv[index + 1], index + 2
        else:
            value, index = "true", index + 1
        if key == "config":
            configs.append(resolve_config_path(value))
        else:
            overrides.append((key, value))
    return configs, overrides


def build_config(model: type[T], config_files: list[Path], overrides: list[tuple[str, Any]],
                 ignore_keys: tuple[str, ...] = ()) -> T:
    """Merge files in order, apply overrides, validate; errors name the file (or command line) and the key.

    An override given as text is read as YAML (`3`, `true`, `[a, b]`); where what YAML made of it fails validation,
    the text itself is tried, so `--instance_id 5` is the id "5" and `--instances.slice 5:20` (YAML 1.1 reads a
    base-60 number) the slice. `ignore_keys` are top-level keys another command reads from the same file (e.g.
    `instances` for run-batch).
    """
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for path in _with_bases(config_files):
        try:
            data = _expand_env(load_yaml_file(path))
            data.pop("extends", None)
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None
        # A top-level key with dots (`agent.model.models.1.model:`) sets that path, as on the command line, so an
        # overlay can change one entry of a list; a mapping there updates the mapping it finds.
        dotted = {key: data.pop(key) for key in list(data) if "." in str(key)}
        _merge(merged, data, str(path), origins)
        for key, value in dotted.items():
            try:
                _set_path(merged, str(key).split("."), value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {str(exc).removeprefix(COMMAND_LINE + ': ')}") from None
            origins[tuple(str(key).split("."))] = str(path)
    texts: dict[tuple[str, ...], str] = {}
    for key, value in overrides:
        parts = tuple(key.split("."))
        parsed = parse_override_value(value) if isinstance(value, str) else value
        _set_path(merged, list(parts), parsed)
        origins[parts] = COMMAND_LINE
        texts.pop(parts, None)
        if isinstance(value, str) and parsed != value:
            texts[parts] = value
    for key in ignore_keys:
        merged.pop(key, None)
    _register_secret_keys(merged)
    while True:
        try:
            return model.model_validate(merged)
        except ValidationError as exc:
            errors = exc.errors()
        as_text = [parts for parts in texts if any(_matches(parts, tuple(map(str, e["loc"]))) for e in errors)]
        if not as_text:
            break
        for parts in as_text:
            _set_path(merged, list(parts), texts.pop(parts))
    error = errors[0]
    user_path = user_key_path(error["loc"], merged, error["type"] == "missing")
    key_path = ".".join(user_path)
    origin = _origin_of(user_path, origins) or (", ".join(map(str, config_files)) or COMMAND_LINE)
    expected = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        expected = "unknown key (typo? see the config classes in sweagent/ for the valid keys)"
    raise ConfigError(f"{origin}: key '{key_path}': {expected}")


def _origin_of(user_path: tuple[str, ...], origins: dict[tuple[str, ...], str]) -> str | None:
    """The source that set the bad value: the last one that set the key or anything below it (`--x.type json` for an
    error at `x`), else the one that set the nearest key above it."""
    below = [origin for path, origin in origins.items() if path[:len(user_path)] == user_path]
    if below:
        return below[-1]
    for length in range(len(user_path) - 1, 0, -1):
        if user_path[:length] in origins:
            return origins[user_path[:length]]
    return None


def _matches(path: tuple[str, ...], loc: tuple[str, ...]) -> bool:
    """True when `path` (a YAML key path) is `loc` with pydantic's union-tag segments removed."""
    iterator = iter(loc)
    return all(any(part == segment for segment in iterator) for part in path) and path[-1:] == loc[-1:]


def redact(data: Any) -> Any:
    """A copy of a config dump with secret-named keys' values and every known secret value masked."""
    return redact_data(_mask_secret_keys(data))


def _mask_secret_keys(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: (MASK if _SECRET_KEY.search(str(key)) and value else _mask_secret_keys(value)) for key, value in data.items()}
    if isinstance(data, list):
        return [_mask_secret_keys(item) for item in data]
    return data
