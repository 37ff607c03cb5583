"""The repo config file (.gitexp.yaml at the repository root)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gitexp.errors import InvalidConfig
from gitexp.format import CONFIG_FILE

DEFAULT_PARAMS = ("params.yaml",)
DEFAULT_METRICS = ("metrics.json", "metrics.yaml")
DEFAULT_LARGE_FILES = 10_000_000
KNOWN_KEYS = ("params", "metrics", "data", "outputs", "large_files", "cache_inputs", "direction")
LOWER_IS_BETTER_WORDS = ("loss", "error", "err", "rmse", "mae", "mse", "perplexity", "wer", "cer")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


@dataclass(frozen=True)
class Config:
    params: tuple[str, ...] = DEFAULT_PARAMS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    data: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    large_files: int | None = DEFAULT_LARGE_FILES
    cache_inputs: bool = True
    direction: tuple[tuple[str, str], ...] = ()  # (metric, "higher" | "lower"), the first is the primary metric
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
    cache_inputs = data.get("cache_inputs", True)
    if not isinstance(cache_inputs, bool):
        raise InvalidConfig(CONFIG_FILE, "'cache_inputs' must be true or false")
    return Config(
        params=_paths(data, "params", DEFAULT_PARAMS),
        metrics=_paths(data, "metrics", DEFAULT_METRICS),
        data=tuple(p.rstrip("/") for p in _paths(data, "data", ())),
        outputs=tuple(p.rstrip("/") for p in _paths(data, "outputs", ())),
        large_files=_size(data.get("large_files", DEFAULT_LARGE_FILES)),
        cache_inputs=cache_inputs,
        direction=_direction(data.get("direction", {})),
        params_explicit="params" in data,
        warnings=warnings,
    )


def _direction(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and v in ("higher", "lower") for k, v in value.items()):
        raise InvalidConfig(CONFIG_FILE, "'direction' must map metric names to higher or lower, e.g. {accuracy: higher, loss: lower}")
    return tuple(value.items())


def higher_is_better(config: Config, metric: str) -> bool:
    """Whether a larger value of metric is an improvement (configured, else guessed from its name)."""
    for name, way in config.direction:
        if name == metric:
            return way == "higher"
    last = metric.rsplit(".", 1)[-1].lower()
    return not any(word in last for word in LOWER_IS_BETTER_WORDS)


def _size(value: Any) -> int | None:
    """'10MB', '512KiB', 1000000 -> bytes; false/null/'off' -> None (the rule is off)."""
    if value in (None, False, "off"):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        number = text.rstrip("kmgibB")
        unit = text[len(number):]
        try:
            if unit in _UNITS and float(number) > 0:
                return int(float(number) * _UNITS[unit])
        except ValueError:
            pass
    raise InvalidConfig(CONFIG_FILE, f"'large_files' must be a size such as 10MB or 512KiB, or off (got {value!r})")


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
