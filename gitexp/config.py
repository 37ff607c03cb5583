"""The repo config file (.gitexp.yaml at the repository root)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gitexp.errors import InvalidConfig
from gitexp.format import CONFIG_FILE

DEFAULT_PARAMS = ("params.yaml",)
DEFAULT_METRICS = ("metrics.json", "metrics.yaml")
DEFAULT_LARGE_FILES = 10_000_000
KNOWN_KEYS = (
    "params", "metrics", "data", "outputs", "large_files", "cache_inputs", "direction", "remotes", "scalars",
    "sample_interval", "exclude",
)
DEFAULT_SAMPLE_INTERVAL = 2.0
# A metric is lower-is-better when one of its name's parts is one of these words (see name_parts).
LOWER_IS_BETTER_WORDS = frozenset({
    "loss", "losses", "error", "errors", "err", "mse", "mae", "rmse", "mape", "nll", "bpc", "bpd", "ppl",
    "perplexity", "wer", "cer", "fid", "logloss", "mlogloss", "time", "runtime", "latency", "duration", "seconds",
    "sec", "ms", "regret", "minimize",  # (an Optuna objective recorded under its direction's name)
})
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")  # words: runs of letters, camelCase split too
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
    remotes: tuple[tuple[str, str], ...] = ()  # data remotes: (name, url)
    scalars: str | None = None  # capture scalars printed on stdout: None (off), "default", or a regex
    sample_interval: float = DEFAULT_SAMPLE_INTERVAL  # seconds between hardware samples; 0: off
    exclude: tuple[str, ...] = ()  # patterns of files data and output paths leave out (besides secrets)
    params_explicit: bool = False
    warnings: tuple[str, ...] = ()


def load(root: Path, state_dir: Path | None = None) -> Config:
    """The config of the workspace at root. With state_dir (the store's), what the file parsed to is kept
    there, keyed by the file's whole text, so that the next command reads it without importing YAML."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidConfig(CONFIG_FILE, f"not valid YAML ({_first_line(exc)})") from exc
    data = _parsed(text, state_dir)
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
        remotes=_remotes(data.get("remotes", {})),
        scalars=_scalars(data.get("scalars")),
        sample_interval=_interval(data.get("sample_interval", DEFAULT_SAMPLE_INTERVAL)),
        exclude=_patterns(data.get("exclude", [])),
        params_explicit="params" in data,
        warnings=warnings,
    )


_PARSED = "config-parsed.json"  # in the state dir: {"text": the file's text, "data": what it parsed to}


def _parsed(text: str, state_dir: Path | None) -> Any:
    import json

    kept = state_dir / _PARSED if state_dir is not None else None
    if kept is not None:
        try:
            found = json.loads(kept.read_bytes())
            if isinstance(found, dict) and found.get("text") == text and "data" in found:
                return found["data"]
        except (OSError, ValueError, RecursionError):
            pass  # none yet, or damaged: parsed again below
    import yaml

    from gitexp.safeload import yaml_loads

    try:
        data = yaml_loads(text, CONFIG_FILE)
    except yaml.YAMLError as exc:
        raise InvalidConfig(CONFIG_FILE, f"not valid YAML ({_first_line(exc)})") from exc
    if kept is not None:
        try:
            encoded = json.dumps({"text": text, "data": data}, allow_nan=False)
            if json.loads(encoded)["data"] == data:  # only what JSON gives back the same (not dates, int keys)
                tmp = kept.with_name(f"{_PARSED}.{os.getpid()}.tmp")
                tmp.write_text(encoded, encoding="utf-8")
                os.replace(tmp, kept)
        except (OSError, TypeError, ValueError, RecursionError):
            pass  # kept or not, the config is the same: only the next command's time differs
    return data


def _patterns(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip("/") for v in value):
        raise InvalidConfig(CONFIG_FILE, "'exclude' must be a file name pattern or a list of them, e.g. [*.tmp, secrets/]")
    return tuple(value)


def _scalars(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if not isinstance(value, str) or not value:
        raise InvalidConfig(CONFIG_FILE, "'scalars' must be true, false, default, or a regular expression")
    return value


def _interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidConfig(CONFIG_FILE, "'sample_interval' must be a number of seconds (0 turns sampling off)")
    return float(value)


def _direction(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and v in ("higher", "lower") for k, v in value.items()):
        raise InvalidConfig(CONFIG_FILE, "'direction' must map metric names to higher or lower, e.g. {accuracy: higher, loss: lower}")
    return tuple(value.items())


def _remotes(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()):
        raise InvalidConfig(CONFIG_FILE, "'remotes' must map data remote names to URLs or directories")
    return tuple(value.items())


def add_remote(root: Path, name: str, url: str) -> None:
    """Add a data remote to .gitexp.yaml, editing the text so comments and layout stay as they are."""
    import json
    import re

    from gitexp.names import validate

    validate(name)
    config = load(root)
    if any(n == name for n, _ in config.remotes):
        raise InvalidConfig(CONFIG_FILE, f"a data remote named {name!r} already exists")
    path = root / CONFIG_FILE
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    line = f"  {name}: {json.dumps(url)}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"remotes:[ \t]*(#.*)?$", ln.rstrip("\n"))), None)
    if config.remotes and start is None:
        raise InvalidConfig(CONFIG_FILE, "its 'remotes:' is not a block mapping; add the remote by hand")
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["remotes:\n", line]
    else:  # after the block's last indented line, so remotes stay in the order they were added
        last = start
        for i in range(start + 1, len(lines)):
            if lines[i].strip() and not lines[i].startswith((" ", "\t")):
                break
            if lines[i].strip():
                last = i
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        lines.insert(last + 1, line)
    text = "".join(lines)
    from gitexp.safeload import yaml_loads
    from gitexp.workspace import atomic_write

    if (yaml_loads(text, CONFIG_FILE) or {}).get("remotes", {}).get(name) != url:  # checked before anything is written
        raise InvalidConfig(CONFIG_FILE, "the remote could not be added to it safely; add it by hand")
    atomic_write(path, text.encode("utf-8"), path.stat().st_mode & 0o7777 if path.exists() else None)


def higher_is_better(config: Config, metric: str) -> bool:
    """Whether a larger value of metric is an improvement: as `direction:` says, else guessed from its name.

    The one rule behind diff, compare, diff -g (and anything else that says better or worse).
    """
    for name, way in config.direction:
        if name == metric:
            return way == "higher"
    parts = name_parts(metric)
    # a word after "per" is a rate's unit: samples_per_sec is higher-is-better
    return not any(p in LOWER_IS_BETTER_WORDS and (i == 0 or parts[i - 1] != "per") for i, p in enumerate(parts))


def name_parts(metric: str) -> list[str]:
    """A metric name's words, lower-cased: split at anything not a letter (`_ . - / : @`, digits) and at
    camelCase, so `val/loss_2` -> val, loss and `answer_f1` -> answer, f (never a `wer` inside a word)."""
    return [part.lower() for part in _PART.findall(metric)]


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
