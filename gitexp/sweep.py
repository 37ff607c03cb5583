"""Sweeps: many runs from one `gitexp run`, as a grid, a random sample, and repeats with seeds.

`-S lr=0.1,0.01` and `-S lr=[0.1, 0.01]` give a list of values; several such
lists make a grid (their product, in the order given). With `--random N`, N
configs are drawn instead: a list is a choice, and `uniform(a,b)`,
`loguniform(a,b)`, `randint(a,b)` (both ends included) and `choice(x,y,...)`
are sampled. `--repeat N` runs each config N times; with `--seed-param KEY`
each repeat sets KEY to its own seed (the same seeds in every config, so
configs are compared on equal terms): `--seeds 1,2,3`, or random ones.
Every run records its overrides and the sweep's id, index and seed param.
A key may be a `{key}` placeholder of the command instead of a params file's
key (`-- python main.py --lr {lr}`): the recorder substitutes the values.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any

from gitexp.errors import GitexpError, InvalidOverride
from gitexp.paramfiles import parse_override

MAX_RUNS = 10_000
_SAMPLER = re.compile(r"^\s*(uniform|loguniform|randint|choice)\s*\((.*)\)\s*$")
_CALL = re.compile(r"^\s*[A-Za-z_]\w*\s*\(.*\)\s*$")  # looks like a sampler: a typo of one is refused


class BadSweep(GitexpError):
    pass


@dataclass(frozen=True)
class Axis:
    """One -S: a key and its values (one value: not swept), or a distribution to sample (with --random)."""

    key: str
    values: tuple[str, ...]  # YAML texts, each a valid override value
    sampler: tuple[str, tuple[float, ...]] | None = None

    def draw(self, rng: random.Random) -> str:
        if self.sampler is None:
            return rng.choice(self.values)
        kind, (low, high) = self.sampler
        if kind == "uniform":
            return repr(rng.uniform(low, high))
        if kind == "loguniform":
            return repr(math.exp(rng.uniform(math.log(low), math.log(high))))
        return str(rng.randint(int(low), int(high)))


@dataclass(frozen=True)
class PlannedRun:
    overrides: tuple[str, ...]  # KEY=VALUE texts, as -S would take them
    index: int
    seed: int | None = None


@dataclass(frozen=True)
class Plan:
    runs: tuple[PlannedRun, ...]
    id: str | None = None  # None: a single run, not a sweep
    seed_param: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def record(self, run: PlannedRun) -> dict[str, Any] | None:
        """What a run of this sweep records of it (run.json 'sweep', trailer Gitexp-Sweep)."""
        if self.id is None:
            return None
        out: dict[str, Any] = {"id": self.id, "index": run.index, "size": len(self.runs), "overrides": list(run.overrides)}
        if self.seed_param:
            out["seed_param"] = self.seed_param
        out.update(self.info)  # random_seed: the same draws again with --random-seed
        return out


def parse_axis(text: str) -> Axis:
    """'lr=0.1,0.01' / 'lr=[0.1, 0.01]' / 'lr=loguniform(1e-4,1e-1)' / 'lr=0.1' -> an Axis."""
    key, sep, raw = text.partition("=")
    if not sep:
        raise InvalidOverride(text, "it has no '='")
    key = key.strip()
    sampled = _SAMPLER.match(raw)
    if sampled:
        kind, args = sampled.group(1), _split(sampled.group(2))
        if kind == "choice":
            return Axis(key, _checked(key, args))
        try:
            low, high = (float(a) for a in args)
        except ValueError as exc:
            raise InvalidOverride(text, f"{kind}() takes two numbers, e.g. {kind}(1e-4, 1e-1)") from exc
        if kind == "randint" and not (low.is_integer() and high.is_integer()):
            raise InvalidOverride(text, "randint() takes two integers, e.g. randint(1, 8)")
        if low > high or (kind == "loguniform" and low <= 0):
            raise InvalidOverride(text, f"{kind}() needs low <= high" + (" and low > 0" if kind == "loguniform" else ""))
        return Axis(key, (), (kind, (low, high)))
    if _CALL.match(raw):
        raise InvalidOverride(text, "unknown sampler: use uniform(a,b), loguniform(a,b), randint(a,b) or choice(x,y,...)")
    stripped = raw.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        import yaml

        try:
            items = yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            raise InvalidOverride(text, "the list is not valid YAML") from exc
        if not isinstance(items, list) or not items:
            raise InvalidOverride(text, "a list of values must not be empty")
        return Axis(key, _checked(key, [json.dumps(v) if not isinstance(v, str) else _yaml_text(v) for v in items]))
    return Axis(key, _checked(key, _split(raw)))


def _yaml_text(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML string: quoting keeps "1e-3" or "true" as text


def _split(raw: str) -> list[str]:
    """Split at commas that are not inside quotes or brackets."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _checked(key: str, values: list[str]) -> tuple[str, ...]:
    for value in values:
        if value == "" and len(values) > 1:  # `-S x=` alone is one value: null
            raise InvalidOverride(f"{key}=...", "a value in the list is empty (two commas in a row?)")
        parse_override(f"{key}={value}")
    return tuple(values)


def plan(
    overrides: tuple[str, ...],
    repeat: int = 1,
    seed_param: str | None = None,
    seeds: tuple[int, ...] = (),
    random_count: int | None = None,
    random_seed: int | None = None,
) -> Plan:
    """The runs one `gitexp run` makes; a plain run is a plan of one run with no sweep id."""
    axes = [parse_axis(text) for text in overrides]
    keys = [a.key.lstrip("+") for a in axes]
    twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if twice is not None:
        raise BadSweep(f"-S {twice}=... is given twice (give all its values in one -S: {twice}=a,b,c)")
    if seeds and repeat == 1:
        repeat = len(seeds)
    if repeat < 1:
        raise BadSweep("--repeat must be at least 1")
    if seeds and len(seeds) != repeat:
        plural = "" if len(seeds) == 1 else "s"
        raise BadSweep(f"--seeds gives {len(seeds)} seed{plural} for --repeat {repeat} (give one seed per repeat)")
    if len(set(seeds)) != len(seeds):
        again = sorted({s for s in seeds if seeds.count(s) > 1})
        raise BadSweep(f"--seeds repeats {', '.join(map(str, again))}: each repeat needs a seed of its own")
    if seeds and not seed_param:
        raise BadSweep("--seeds needs --seed-param KEY: the param your script reads its seed from")
    if seed_param and seed_param in keys:
        raise BadSweep(f"-S {seed_param}=... and --seed-param {seed_param} both set the seed (drop one)")
    info: dict[str, Any] = {}
    if random_count is not None:
        if random_count < 1:
            raise BadSweep("--random must be at least 1")
        rng_seed = random_seed if random_seed is not None else int.from_bytes(os.urandom(4), "big")
        rng = random.Random(rng_seed)
        info["random_seed"] = rng_seed
        configs = [tuple(f"{a.key}={a.draw(rng)}" for a in axes) for _ in range(random_count)]
    else:
        for axis in axes:
            if axis.sampler is not None:
                raise BadSweep(f"-S {axis.key}={axis.sampler[0]}(...) needs --random N: how many runs to draw")
        configs = [
            tuple(f"{a.key}={v}" for a, v in zip(axes, values, strict=True))
            for values in itertools.product(*(a.values for a in axes))
        ]
    total = len(configs) * repeat
    if total > MAX_RUNS:
        raise BadSweep(f"this sweep makes {total} runs; more than {MAX_RUNS} is surely a mistake (fewer values?)")
    if seed_param and not seeds:
        seeds = tuple(random.SystemRandom().sample(range(1 << 31), repeat))  # distinct
    runs: list[PlannedRun] = []
    for config in configs:
        for r in range(repeat):
            seed = seeds[r] if seed_param else None
            extra = (f"+{seed_param}={seed}",) if seed_param else ()  # named by --seed-param: may be new
            runs.append(PlannedRun(config + extra, len(runs), seed))
    if total == 1 and random_count is None:
        return Plan(tuple(runs))
    sweep_id = "sw-" + os.urandom(4).hex()
    return Plan(tuple(runs), sweep_id, seed_param, info)
