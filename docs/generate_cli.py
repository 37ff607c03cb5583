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


def render() -> str:
    runner = CliRunner()
    parts = [HEADER, "## gitexp\n", "```\n" + runner.invoke(cli, ["--help"], prog_name="gitexp", terminal_width=80, max_content_width=80).output + "```\n"]
    for name in COMMANDS:
        out = runner.invoke(cli, [name, "--help"], prog_name="gitexp", terminal_width=80, max_content_width=80).output
        parts.append(f"## gitexp {name}\n\n```\n{out}```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    target = Path(__file__).with_name("cli.md")
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")
