"""The data side of one run: hash and cache inputs before it, outputs after it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gitexp.data.cache import Cache
from gitexp.data.hashing import StatCache
from gitexp.data.pointers import DataPointer, Manifest, collect, total_size
from gitexp.format import DATA_FILE, MANIFEST_DIR, to_json
from gitexp.model import Progress
from gitexp.trust import Exclude, Trust, Untrusted


def cache_root(common_dir: Path) -> Path:
    return common_dir / "gitexp" / "cache"


def stat_db(common_dir: Path) -> Path:
    return common_dir / "gitexp" / "stat.db"


class DataSession:
    """Collects pointers for a run; what it caches is pinned (before it is stored) until close(), so
    `gitexp gc` keeps it until the run's ref points at it."""

    def __init__(
        self, common_dir: Path, root: Path, progress: Progress | None = None,
        notify: Callable[[str], None] | None = None, exclude: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.trust = Trust.load(common_dir, root)
        self.exclude = Exclude(exclude)
        self.notify = notify or (lambda message: None)
        self.cache = Cache(cache_root(common_dir))
        self.stats = StatCache(stat_db(common_dir))
        self.progress = progress or Progress()
        self.manifests: dict[str, bytes] = {}
        self.sections: dict[str, list[DataPointer]] = {"inputs": [], "outputs": [], "large_files": []}
        self.cache.clear_tmp()  # what killed runs and pulls left behind
        self.verify_existing = False  # re-check cache objects that already exist before relying on them

    def add(
        self, section: str, paths: tuple[str, ...], cache: bool, label: str, unchanged: set[str] | None = None
    ) -> list[DataPointer]:
        """Collect pointers for paths into section; for outputs, `unchanged` names those the run did not write.

        Secrets and excluded files are left out, with a notice. A path leading outside the work tree
        that this clone has not allowed is refused (an output: left out, with a notice).
        """
        left_out: list[tuple[str, str]] = []
        paths = tuple(p for p in paths if self._allowed(section, p, left_out))
        if not paths:
            self._tell(left_out)
            return []
        self.progress.start(label, sum(total_size(self.root, p) for p in paths))
        try:
            pointers = [
                collect(self.root, p, self.cache if cache else None, self.stats, self.progress, self.manifests,
                        self.verify_existing, self.exclude.why, left_out)
                for p in paths
            ]
        finally:
            self.progress.done()
            self.stats.flush()
        self._tell(left_out)
        if unchanged is not None:
            pointers = [p._replace(fresh=p.path not in unchanged) if p.kind != "missing" else p for p in pointers]
        self.sections[section].extend(pointers)
        return pointers

    def _allowed(self, section: str, path: str, left_out: list[tuple[str, str]]) -> bool:
        why = self.exclude.why(path)
        if why is not None:
            left_out.append((path, why))
            return False
        if section != "outputs":
            self.trust.check(path, "data path")
            return True
        try:  # an output leading outside only now: the run has happened, and is recorded without it
            self.trust.check(path, "output", "it is left out of the run")
        except Untrusted as exc:
            self.notify(exc.message)
            return False
        return True

    def _tell(self, left_out: list[tuple[str, str]]) -> None:
        if left_out:
            shown = ", ".join(f"{p} ({why})" for p, why in left_out[:10])
            more = f" and {len(left_out) - 10} more" if len(left_out) > 10 else ""
            self.notify(f"left out of the run (never cached or pushed): {shown}{more}")

    def adopt(self, store: Any, commit: str, sections: tuple[str, ...]) -> None:
        """Take these sections' pointers (and their manifests) from an existing run's record, without hashing."""
        from gitexp.data.inventory import run_pointers

        found = run_pointers(store, commit)
        for section in sections:
            pointers = found.get(section, [])
            self.sections[section].extend(pointers)
            for p in pointers:
                if p.kind == "dir" and p.digest:
                    manifest = store.read_record(commit, f"{MANIFEST_DIR}/{p.digest}.json")
                    if manifest is not None:
                        Manifest.from_bytes(manifest, f"the manifest of {p.path}")  # refused here if damaged
                        self.manifests[p.digest] = manifest
        digests = {p.digest for ps in self.sections.values() for p in ps if p.digest}
        self.cache.pin(digests | {e["digest"] for raw in self.manifests.values() for e in _manifest_files(raw)})

    def record_files(self) -> dict[str, bytes]:
        """data.json and the manifests, for the run's .gitexp/ record (empty without data)."""
        if not any(self.sections.values()):
            return {}
        data: dict[str, Any] = {k: [p.to_dict() for p in v] for k, v in self.sections.items()}
        data["stats"] = {
            "hashed_bytes": self.stats.hashed_bytes,
            "hashed_files": self.stats.hashed_files,
            "stored_bytes": self.cache.stored_bytes,
            "stored_files": self.cache.stored_files,
        }
        files = {DATA_FILE: to_json(data).encode()}
        for digest, raw in self.manifests.items():
            files[f"{MANIFEST_DIR}/{digest}.json"] = raw
        return files

    def close(self) -> None:
        self.stats.close()
        self.cache.release()


def _manifest_files(raw: bytes) -> list[dict[str, Any]]:
    return [e for e in Manifest.from_bytes(raw, "a manifest").entries if "digest" in e]
