"""Write docs/cli.md from each command's --help (run: python docs/generate_cli.py).

tests/test_docs.py fails when docs/cli.md is stale or a command is undocumented.
"""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from gitexp.cli import COMMANDS, cli

HEADER = """# CLI reference

Generated from each command's `--help` by `python docs/generate_cli.py`; do not edit by hand.
`git exp ...` is the same as `gitexp ...` (use `git exp -h`: git itself answers
`git exp --help` by looking for a man page).

Exit codes: `gitexp run` exits with its command's exit code, 128+N when the command
was killed by signal N (130 after Ctrl-C, 143 after SIGTERM). gitexp's own errors
exit 1 with one line on stderr (`gitexp: error: ...`), usage errors 2, 126/127 when
the command cannot be executed/found (nothing is recorded), 3 on an internal error.
`gitexp fsck` exits 1 when it finds a problem.
"""


FILTER_LANGUAGE = """## The `--where` language

Used by `gitexp list --where` and `gitexp tree --where`. Runs for which the
expression is not true are left out; a run that lacks a field an expression
needs is left out too (three-valued logic: a comparison with a missing field is
unknown, `not unknown` is unknown, and only true keeps a run).

```
expr       := or_expr                                   -- precedence: not > and > or
or_expr    := and_expr ("or" and_expr)*
and_expr   := not_expr ("and" not_expr)*
not_expr   := "not" not_expr | "(" or_expr ")" | comparison
comparison := FIELD OP VALUE | FIELD ["not"] "in" "(" VALUE ("," VALUE)* ")"
OP         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
FIELD      := name | status | user | note | commit | branch | base | tag | tags | created
            | duration | exit_code | params.<key> | metrics.<key>
VALUE      := number | 'str' | "str" (\\' \\" \\\\ escapes) | bare word [letters digits _ . : + - /]
            | true | false | null | none                (keywords are case-insensitive)
```

- Numbers compare as numbers (a param stored as the text `1e-4` too); strings as strings.
  `NaN` and infinities (recorded as the strings `"NaN"`, `"Infinity"`) compare as such:
  `metrics.loss = nan` finds diverged runs.
- `tag = x` / `tag != x`: whether the run has tag x (`tag = null`: no tags).
- `base = X`: the run's base branch is X, or its base commit starts with X (4+ characters).
- `created`: compared as a date: `2026-11-01` (local midnight; `=` means that day),
  `2026-11-01T14:00`, or an age: `created > 7d` is "in the last 7 days" (units s m h d w).
- `duration`: seconds, or with a unit: `duration > 5m`.
- `x = null` is true when the run has no x.
- `params.lr in (0.1, 0.3)` is `(params.lr = 0.1 or params.lr = 0.3)`; `not in` negates it
  (a run without the key is still left out).

When no run matches, `gitexp list` prints `no runs match: EXPR` and exits 0, with a
warning on stderr for each likely mistake: a `params.`/`metrics.`/`resources.` key
that no run has (`gitexp: no run has metrics.los (did you mean metrics.loss? metrics
recorded: acc, loss)`), or text compared with a key that is a number in every run
(`metrics.loss < abc`). A key no run has is not an error: it may be recorded by the
next run.

Examples: `metrics.acc > 0.9 and params.lr <= 0.01`, `status = failed or exit_code != 0`,
`tag = baseline and created > 2d`, `not (params.opt = 'adam')`.

Sorting (`--sort`) takes the same field names, comma-separated, `-` for descending;
runs missing a key come last either way.
"""


def render() -> str:
    runner = CliRunner()
    parts = [HEADER, "## gitexp\n", "```\n" + runner.invoke(cli, ["--help"], prog_name="gitexp", terminal_width=80, max_content_width=80).output + "```\n"]
    for name in COMMANDS:
        out = runner.invoke(cli, [name, "--help"], prog_name="gitexp", terminal_width=80, max_content_width=80).output
        parts.append(f"## gitexp {name}\n\n```\n{out}```\n")
    parts.append(FILTER_LANGUAGE)
    return "\n".join(parts)


if __name__ == "__main__":
    target = Path(__file__).with_name("cli.md")
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")
