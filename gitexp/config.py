"""The repo config file (.gitexp.yaml at the repository root)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gitexp.errors import InvalidConfig
from gitexp.format import CONFIG_FILE

DEFAULT_PARAMS = ("params.yaml",)
DEFAULT_METRICS = ("metrics.json", "metrics.yaml")
KNOWN_KEYS = ("params", "metrics")


@dataclass(frozen=True)
class Config:
    params: tuple[str, ...] = DEFAULT_PARAMS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    params_explicit: bool = False
    warnings: tuple[str, ...] = ()


def load(root: Path) -> Config:
    path = root / CONFIG_FILE
    if not path.is_file():
        return Config()
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidConfig(CONFIG_FILE, f"not valid YAML ({_first_line(exc)})") from exc
    if data is None:
        return Config()
    if not isinstance(data, dict):
        raise InvalidConfig(CONFIG_FILE, "the top level must be a mapping such as 'params: [params.yaml]'")
    warnings = tuple(
        f"{CONFIG_FILE}: unknown key {key!r} ignored (known: {', '.join(KNOWN_KEYS)})"
        for key in data
        if key not in KNOWN_KEYS
    )
    return Config(
        params=_paths(data, "params", DEFAULT_PARAMS),
        metrics=_paths(data, "metrics", DEFAULT_METRICS),
        params_explicit="params" in data,
        warnings=warnings,
    )


def _paths(data: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = data.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidConfig(CONFIG_FILE, f"'{key}' must be a path or a list of paths")
    for item in value:
        check_repo_path(item, f"'{key}' entry")
    return tuple(value)


def check_repo_path(path: str, what: str) -> None:
    """Refuse a path that is absolute or escapes the repository."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise InvalidConfig(CONFIG_FILE, f"{what} {path!r} must be a relative path inside the repository")


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
