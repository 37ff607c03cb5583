"""The experiment evolution tree: runs under the runs they improve upon, grouped by base commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitexp.model import RunSummary


@dataclass
class Node:
    run: RunSummary
    children: list[Node] = field(default_factory=list)
    detached: bool = False  # its parent run was deleted (or filtered out with no shown ancestor)


@dataclass
class Group:
    """Root runs that started from one base commit (and branch)."""

    base: str | None
    branch: str | None
    roots: list[Node] = field(default_factory=list)


def build(all_runs: list[RunSummary], shown: list[RunSummary] | None = None) -> list[Group]:
    """The forest of `shown` runs (default: all), each under its nearest shown ancestor.

    Ancestry is followed through all_runs, so filtering a run out keeps its
    descendants under its own nearest shown ancestor.
    """
    by_commit = {r.commit: r for r in all_runs}
    shown = all_runs if shown is None else shown
    visible = {r.commit for r in shown}
    nodes = {r.commit: Node(r) for r in shown}
    groups: dict[tuple[str | None, str | None], Group] = {}
    for run in sorted(shown, key=lambda r: (r.started_at, r.name)):
        parent = _shown_ancestor(run, by_commit, visible)
        node = nodes[run.commit]
        if parent is not None:
            nodes[parent].children.append(node)
            continue
        node.detached = run.parent is not None and run.parent not in by_commit
        key = (run.base, run.base_branch)
        groups.setdefault(key, Group(run.base, run.base_branch)).roots.append(node)
    return list(groups.values())


def focus(all_runs: list[RunSummary], run: RunSummary) -> list[Group]:
    """One run's ancestry (root first) and all its descendants."""
    by_commit = {r.commit: r for r in all_runs}
    keep = {run.commit}
    cursor: RunSummary | None = run
    while cursor is not None and cursor.parent in by_commit and cursor.parent not in keep:
        keep.add(cursor.parent)  # type: ignore[arg-type]
        cursor = by_commit[cursor.parent]  # type: ignore[index]
    children: dict[str, list[RunSummary]] = {}
    for r in all_runs:
        if r.parent:
            children.setdefault(r.parent, []).append(r)
    stack = [run.commit]
    while stack:
        for child in children.get(stack.pop(), []):
            if child.commit not in keep:
                keep.add(child.commit)
                stack.append(child.commit)
    return build(all_runs, [r for r in all_runs if r.commit in keep])


def _shown_ancestor(run: RunSummary, by_commit: dict[str, RunSummary], visible: set[str]) -> str | None:
    seen = set()
    parent = run.parent
    while parent is not None and parent in by_commit and parent not in seen:
        if parent in visible:
            return parent
        seen.add(parent)
        parent = by_commit[parent].parent
    return None


def to_dict(groups: list[Group], metric: str | None) -> list[dict[str, Any]]:
    """The groups as plain data, each node with its children; built with a stack (a lineage may be very deep)."""

    def node(n: Node) -> dict[str, Any]:
        r = n.run
        return {
            "name": r.name,
            "commit": r.commit,
            "status": r.status,
            "started": r.started,
            "note": r.note,
            "metric": {"name": metric, "value": r.metrics.get(metric)} if metric else None,
            "parent_deleted": n.detached,
            "children": [],
        }

    out = []
    for g in groups:
        roots = [node(n) for n in g.roots]
        todo = list(zip(g.roots, roots))
        while todo:
            n, d = todo.pop()
            for child in n.children:
                c = node(child)
                d["children"].append(c)
                todo.append((child, c))
        out.append({"base": g.base, "branch": g.branch, "runs": roots})
    return out
