"""The storage layer: the only code that talks to git (through pygit2).

It turns pygit2's errors into gitexp's own and knows where run commits, refs
and gitexp's local state live.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp.store import binding

binding.load()  # pygit2 without the ssl module (see binding.py)

import pygit2  # noqa: E402
from pygit2.enums import FileMode  # noqa: E402

from gitexp import format as fmt
from gitexp.environment import hostname, login
from gitexp.errors import BareRepository, GitexpError, NotARepository, RunNameTaken, StorageError
from gitexp.model import RunSummary, Snapshot
from gitexp.safeload import MAX_LARGE_BYTES, MAX_MESSAGE_BYTES, UnreadableRecord
from gitexp.store import snapshot as _snapshot

if TYPE_CHECKING:
    import subprocess

# How long a tag or note update retries while other processes move or lock the notes ref.
NOTES_RETRY_SECONDS = 60  # 48 concurrent writers at load 26 on 2 cores needed more than 15 s
# Loose run refs from which a large sweep or pull packs them (git pack-refs --all).
PACK_REFS_AT = 256
TREE_MEMO = 50_000  # tree objects a Store keeps the entries of (a long-lived one, the UI's, starts over past it)
TreeItems = tuple[tuple[str, int, str], ...]  # a tree object's entries: (name, mode, id)
TreeVisitor = Callable[[str, TreeItems, str], None]  # (tree id, its entries, the path prefix they are under)


class Store:
    """One git repository as gitexp sees it."""

    def __init__(self, repo: pygit2.Repository, bare_ok: bool = False) -> None:
        self.bare = repo.is_bare or repo.workdir is None
        if self.bare and not bare_ok:
            raise BareRepository(repo.path)
        self.repo = repo
        # A bare repository (read-only commands only) has no work tree: its git dir stands in.
        self.root = Path(repo.path if self.bare else repo.workdir)
        # Per-workspace state (pointer, scratch files) lives in this worktree's git dir.
        self.state_dir = Path(repo.path) / "gitexp"
        self._trees: dict[str, TreeItems] = {}  # tree id -> its entries: trees never change, walks share them

    @classmethod
    def discover(cls, start: str | os.PathLike[str] = ".", bare_ok: bool = False) -> Store:
        """The repository around start, or the one GIT_DIR (and GIT_WORK_TREE) name, as git would use.

        A bare repository is refused (BareRepository) unless bare_ok: commands that only read runs pass it.
        """
        if os.environ.get("GIT_DIR"):
            try:
                repo = pygit2.Repository(os.path.abspath(os.environ["GIT_DIR"]))
                if os.environ.get("GIT_WORK_TREE"):
                    repo.workdir = os.path.abspath(os.environ["GIT_WORK_TREE"])
            except pygit2.GitError as exc:
                raise NotARepository(f"{os.environ['GIT_DIR']} (from GIT_DIR)") from exc
            return cls(repo, bare_ok)
        start = os.path.abspath(start)
        try:
            path = pygit2.discover_repository(start)
        except pygit2.GitError as exc:
            raise NotARepository(start) from exc
        if path is None:
            raise NotARepository(start)
        try:
            return cls(pygit2.Repository(path), bare_ok)
        except pygit2.GitError as exc:
            raise StorageError(f"cannot open the git repository at {path}: {exc}") from exc

    # -- workspace ---------------------------------------------------------

    def snapshot(
        self, replace: dict[str, bytes] | None = None, exclude: tuple[str, ...] = (), large_threshold: int | None = None,
        status: _snapshot.Status | None = None,
    ) -> Snapshot:
        """The workspace's code state (see snapshot.take); status: one from workspace_status(), closed here."""
        try:
            return _snapshot.take(self.repo, replace, exclude, large_threshold, status)
        except pygit2.GitError as exc:
            raise StorageError(f"cannot snapshot the workspace: {exc}") from exc

    def workspace_status(self) -> _snapshot.Status:
        """Start git reading the workspace's status for a snapshot to come; close() it if none comes."""
        return _snapshot.Status(self.repo)

    def head(self) -> tuple[str | None, str | None]:
        return _snapshot.head(self.repo)

    def identity(self) -> tuple[str, str]:
        """The user's git identity, or one made from the login and host name."""
        try:
            sig = self.repo.default_signature
            return sig.name, sig.email
        except (KeyError, pygit2.GitError):
            user = login()
            return user, f"{user}@{hostname() or 'localhost'}"

    def recorded_by(self, commit: str) -> set[str]:
        """The emails of a commit's author and committer."""
        obj = self.repo.get(commit)
        if not isinstance(obj, pygit2.Commit):
            raise StorageError(f"{commit[:12]} is not a commit (run 'git fsck')")
        return {s.raw_email.decode("utf-8", "replace") for s in (obj.author, obj.committer)}

    # -- runs --------------------------------------------------------------

    def run_exists(self, name: str) -> bool:
        return fmt.REF_PREFIX + name in self.repo.references

    def run_commit(self, name: str) -> str | None:
        ref = self.repo.references.get(fmt.REF_PREFIX + name)
        return str(ref.target) if ref is not None else None

    def write_run(
        self,
        name: str,
        snap: Snapshot,
        parent_run: str | None,
        files: dict[str, bytes | Path],
        message: str,
        started: datetime,
        ended: datetime,
        record_trees: dict[str, str] | None = None,
        replacing: str | None = None,
    ) -> str:
        """Write the run commit and point refs/experiments/<name> at it.

        Without replacing, an existing run is never replaced (RunNameTaken); with
        it, the ref must still point at that commit (a run's `running` commit)
        or be gone. record_trees adds existing trees to the record directory.
        """
        repo = self.repo
        try:
            root = repo.TreeBuilder(repo[snap.tree])  # type: ignore[arg-type]
            root.insert(fmt.RECORD_DIR, self._write_tree(files, record_trees or {}), FileMode.TREE)
            tree = root.write()
            parents = [pygit2.Oid(hex=p) for p in dict.fromkeys(x for x in (snap.base, parent_run) if x)]
            user, email = self.identity()
            author = pygit2.Signature(user, email, int(started.timestamp()), _offset(started))
            committer = pygit2.Signature(user, email, int(ended.timestamp()), _offset(ended))
            oid = repo.create_commit(None, author, committer, message, tree, parents)
        except pygit2.GitError as exc:
            raise StorageError(f"cannot write the run commit: {exc}") from exc
        self._point(name, oid, replacing)
        return str(oid)

    def amend_record(self, name: str, commit: str, files: dict[str, bytes | Path], message: str) -> str:
        """Replace run commit `commit` by one whose record has `files` added or replaced, same parents and author."""
        oid = self._amended(name, commit, files, message)
        self._point(name, oid, commit)
        return str(oid)

    def amended_commit(self, commit: str, files: dict[str, bytes | Path], message: str) -> str:
        """A new commit like `commit` (same parents and author) with `files` added to or replaced in its record
        and this message; no ref moves (the remote queue pushes it)."""
        return str(self._amended(commit[:12], commit, files, message))

    def _amended(self, name: str, commit: str, files: dict[str, bytes | Path], message: str) -> pygit2.Oid:
        repo = self.repo
        try:
            old = repo[commit]
            assert isinstance(old, pygit2.Commit)
            record = old.tree[fmt.RECORD_DIR]
            builder = repo.TreeBuilder(record)  # type: ignore[arg-type]
            for filename, data in files.items():
                blob = repo.create_blob_fromdisk(str(data)) if isinstance(data, Path) else repo.create_blob(data)
                builder.insert(filename, blob, FileMode.BLOB)
            root = repo.TreeBuilder(old.tree)
            root.insert(fmt.RECORD_DIR, builder.write(), FileMode.TREE)
            now = datetime.now().astimezone()
            committer = pygit2.Signature(old.author.name, old.author.email, int(now.timestamp()), _offset(now))
            return repo.create_commit(None, old.author, committer, message, root.write(), old.parent_ids)
        except (KeyError, AssertionError, pygit2.GitError) as exc:
            raise StorageError(f"cannot rewrite the record of {fmt.REF_PREFIX}{name}: {exc}") from exc

    def _point(self, name: str, oid: pygit2.Oid, replacing: str | None) -> None:
        refname = fmt.REF_PREFIX + name
        try:
            ref = self.repo.references.get(refname) if replacing else None
            if ref is None:
                self.repo.references.create(refname, oid, force=False)
            elif str(ref.target) != replacing:
                raise RunNameTaken(name)
            else:
                ref.set_target(oid)  # libgit2 refuses if the ref moved since it was read
        except pygit2.AlreadyExistsError as exc:
            raise RunNameTaken(name) from exc
        except pygit2.GitError as exc:
            raise StorageError(f"cannot update {refname}: {exc}") from exc

    def _write_tree(self, files: dict[str, bytes | Path], trees: dict[str, str] | None = None) -> pygit2.Oid:
        """A tree of files keyed by '/'-separated paths (bytes, or a file to read), plus existing subtrees."""
        repo = self.repo
        builder = repo.TreeBuilder()
        for name, tree in (trees or {}).items():
            builder.insert(name, pygit2.Oid(hex=tree), FileMode.TREE)
        subdirs: dict[str, dict[str, bytes | Path]] = {}
        for path, data in files.items():
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, {})[rest] = data
            else:
                blob = repo.create_blob_fromdisk(str(data)) if isinstance(data, Path) else repo.create_blob(data)
                builder.insert(head, blob, FileMode.BLOB)
        for name, sub in subdirs.items():
            builder.insert(name, self._write_tree(sub), FileMode.TREE)
        return builder.write()

    def git_common_dir(self) -> Path:
        """The git dir shared by all worktrees (where the data cache lives)."""
        gitdir = Path(self.repo.path)
        marker = gitdir / "commondir"
        if marker.is_file():
            return (gitdir / marker.read_text().strip()).resolve()
        return gitdir

    def pack_refs_if_many(self, threshold: int = PACK_REFS_AT) -> bool:
        """`git pack-refs --all` when threshold or more run refs are loose files; whether it ran and succeeded.

        After a large sweep or pull: one packed-refs file instead of thousands of small ones keeps a plain
        `git fetch`, `git for-each-ref` and gitexp's own reads fast. Best effort (git retries or skips a ref
        another process holds); git itself packs them likewise in `git gc` and `git maintenance`.
        """
        packing = self.start_packing_refs(threshold)
        return packing is not None and packing.wait() == 0

    def start_packing_refs(self, threshold: int = PACK_REFS_AT) -> subprocess.Popen[bytes] | None:
        """pack_refs_if_many's `git pack-refs --all`, started and not waited for (None: too few are loose).

        Until it ends, no ref may be listed through libgit2, which reads packed-refs and the loose files
        apart (a ref moved from one to the other in between would be missed); looking a ref up by name is
        safe, git writing the new packed-refs before it deletes the loose files."""
        import subprocess

        loose = self.git_common_dir() / fmt.REF_PREFIX.rstrip("/")
        try:
            count = sum(1 for entry in os.scandir(loose) if entry.is_file(follow_symlinks=False))
        except OSError:
            return None
        if count < threshold:
            return None
        try:
            return subprocess.Popen(["git", "pack-refs", "--all"], cwd=self.root, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            return None

    def delete_run(self, name: str, commit: str) -> bool:
        """Delete refs/experiments/<name> if it still points at commit."""
        ref = self.repo.references.get(fmt.REF_PREFIX + name)
        if ref is None or str(ref.target) != commit:
            return False
        try:
            ref.delete()
        except pygit2.GitError as exc:
            raise StorageError(f"cannot delete {fmt.REF_PREFIX}{name}: {exc}") from exc
        return True

    def rename_run(self, old: str, new: str, commit: str) -> None:
        """Move a run to a new name: create refs/experiments/<new> (refusing a taken name), then drop <old>."""
        try:
            self._swap_ref(fmt.REF_PREFIX + new, pygit2.Oid(hex=commit), None, f"gitexp: rename {old} to {new}")
        except (pygit2.GitError, OSError) as exc:
            if "does not match" in str(exc):
                raise RunNameTaken(new) from exc
            raise StorageError(f"cannot create {fmt.REF_PREFIX}{new}: {exc}") from exc
        self.delete_run(old, commit)

    def _swap_ref(self, refname: str, oid: pygit2.Oid, expected: pygit2.Oid | None, message: str) -> None:
        """Point refname at oid if it still points at expected (None: if it does not exist), under its lock.

        Raises pygit2.GitError ("old reference value does not match") if not, OSError if the lock is held.
        (references.create(force=False) checks that the ref is absent before taking the lock: racy.)
        """
        user, email = self.identity()
        pygit2.RefdbFsBackend(self.repo).write(
            pygit2.Reference(refname, oid, None), True, pygit2.Signature(user, email), message,
            expected if expected is not None else pygit2.Oid(hex="0" * 40), None,
        )

    def run_refs(self, problems: list[str] | None = None) -> Iterator[tuple[str, str]]:
        """(name, commit id) of every run ref; a ref whose name no run can have is skipped (and named in problems).

        Read through libgit2, or from refcache while the ref files are unchanged since it was last read.
        libgit2 reads packed-refs and the loose files apart, so a ref that another process moves from one to
        the other meanwhile (`git pack-refs`, which `git gc` runs too) can be missed: when the ref files
        changed during the read, git itself lists them (it reads the loose refs first: nothing is missed)."""
        from gitexp.store import refcache

        common = self.git_common_dir()
        stamp = refcache.fingerprint(common)
        kept = refcache.load(common, stamp[0]) if stamp is not None else None
        if kept is None:
            kept = self._read_run_refs()
            if stamp is not None:
                after = refcache.fingerprint(common)
                if after is not None and after[0] == stamp[0]:
                    refcache.save(common, stamp[0], stamp[1], *kept)
                else:
                    from_git: list[str] = []
                    listed = self.run_refs_from_git(from_git)
                    if listed is not None:
                        kept = (listed, from_git)
        pairs, found = kept
        if problems is not None:
            problems += found
        yield from pairs

    def _read_run_refs(self) -> tuple[list[tuple[str, str]], list[str]]:
        refs = ((ref.name, ref.target) for ref in self.repo.references.iterator())
        return _run_pairs((name, str(target)) for name, target in refs if isinstance(target, pygit2.Oid))

    def run_refs_from_git(self, problems: list[str]) -> list[tuple[str, str]] | None:
        """run_refs as `git for-each-ref` lists them (None when git fails): safe while another process packs
        the refs, git reading the loose refs before packed-refs (libgit2 reads them the other way round, and
        would miss a ref moved between the two)."""
        import subprocess

        try:
            proc = subprocess.run(
                ["git", "for-each-ref", "--format=%(objectname)%00%(symref)%00%(refname)", fmt.REF_PREFIX],
                cwd=self.repo.path, capture_output=True, stdin=subprocess.DEVNULL, check=False,
            )
        except OSError:
            return None
        if proc.returncode != 0:
            return None
        listed = []
        for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
            oid, symref, refname = (line.split("\0") + ["", ""])[:3]
            if not symref:
                listed.append((refname, oid))
        pairs, found = _run_pairs(listed)
        problems += found
        return pairs

    def refs_under(self, prefix: str) -> list[tuple[str, str | None]]:
        """(ref name, the object id it points at; None for a symbolic ref) of every ref under prefix."""
        out = []
        for ref in self.repo.references.iterator():
            if ref.name.startswith(prefix):
                target = ref.target
                out.append((ref.name, str(target) if isinstance(target, pygit2.Oid) else None))
        return out

    def commit_message(self, commit: str) -> str:
        """The message of a commit (StorageError if it is not one; UnreadableRecord beyond the bounds)."""
        obj = self._object(commit)
        if not isinstance(obj, pygit2.Commit):
            raise StorageError(f"{commit[:12]} is not a commit")
        return _message(obj)

    def _object(self, oid: str) -> pygit2.Object | None:
        """The object of a full id (None when absent): looked up by Oid, not as a prefix of unknown length."""
        try:
            key: str | pygit2.Oid = pygit2.Oid(hex=oid)
        except (ValueError, TypeError):
            key = oid
        return self.repo.get(key)

    def set_ref(self, refname: str, commit: str | None) -> None:
        """Point refname at commit, whatever it pointed at (None: delete it). For refs only gitexp uses."""
        try:
            if commit is None:
                if refname in self.repo.references:
                    self.repo.references.delete(refname)
            else:
                self.repo.references.create(refname, pygit2.Oid(hex=commit), force=True)
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise StorageError(f"cannot update {refname}: {exc}") from exc

    def summaries(self, problems: list[str] | None = None) -> list[RunSummary]:
        """Every readable run; what cannot be read is described in problems, never fatal."""
        out = []
        pairs = list(self.run_refs(problems))
        with bulk_reading():
            for (name, commit), message in zip(pairs, self._messages([c for _, c in pairs])):
                try:
                    if message is None:
                        raise StorageError(f"{fmt.REF_PREFIX}{name} does not point to a commit (run 'git fsck')")
                    if isinstance(message, GitexpError):
                        raise message
                    out.append(fmt.summary_from_message(name, commit, message))
                except GitexpError as exc:
                    if problems is not None:
                        problems.append(f"skipped {fmt.REF_PREFIX}{name}: {exc.message}")
        return out

    def _messages(self, commits: list[str]) -> Iterator[str | GitexpError | None]:
        """The message of each commit, in order (None: not a commit; the error when it cannot be read).
        Many are read by git beside this process (store.batch), the rest (or all, if git fails) here."""
        from gitexp.store import batch

        done = 0
        found = batch.messages(self.repo.path, commits, MAX_MESSAGE_BYTES + (1 << 20)) if len(commits) >= batch.WORTH_IT else None
        if found is not None:
            try:
                for item in found:
                    done += 1
                    if isinstance(item, batch.NotACommit):
                        yield None
                    elif isinstance(item, batch.TooLarge) or len(item[0]) > MAX_MESSAGE_BYTES:
                        yield UnreadableRecord(f"the commit message of {commits[done - 1][:12]}", f"it is larger than {MAX_MESSAGE_BYTES >> 20} MiB")
                    else:
                        yield _decode(*item)
            except (OSError, ValueError):  # git stopped (BrokenPipeError among them): the rest are read here
                pass
        for commit in commits[done:]:
            obj = self._object(commit)
            if not isinstance(obj, pygit2.Commit):
                yield None
                continue
            try:
                yield _message(obj)
            except UnreadableRecord as exc:
                yield exc

    def summary(self, name: str, commit: str) -> RunSummary:
        obj = self._object(commit)
        if not isinstance(obj, pygit2.Commit):
            raise StorageError(f"{fmt.REF_PREFIX}{name} does not point to a commit (run 'git fsck')")
        return fmt.summary_from_message(name, commit, _message(obj))

    def annotations(self) -> dict[str, dict[str, Any]]:
        """Tags and notes added after the runs, by run commit id (from NOTES_REF)."""
        repo = self.repo
        if fmt.NOTES_REF not in repo.references:
            return {}
        out = {}
        try:
            for note in repo.notes(fmt.NOTES_REF):  # type: ignore[call-arg]
                try:
                    out[str(note.annotated_id)] = fmt.parse_annotation(note.message)
                except (ValueError, pygit2.GitError):  # a note that is not text counts as none
                    continue
        except pygit2.GitError as exc:
            raise StorageError(f"cannot read {fmt.NOTES_REF}: {exc}") from exc
        return out

    def annotation(self, commit: str) -> dict[str, Any]:
        """The tags and note added after one run ({} when none)."""
        if fmt.NOTES_REF not in self.repo.references:
            return {}
        try:
            return fmt.parse_annotation(self.repo.lookup_note(commit, fmt.NOTES_REF).message)
        except (KeyError, ValueError, pygit2.GitError):
            return {}

    def code_changes(self, a: str, b: str) -> list[tuple[str, str, str]]:
        """(status letter, path, patch text) of each code file that differs from run a to run b.

        The record directory is left out: this is the diff of the code states.
        """
        repo = self.repo
        try:
            diff = repo[a].peel(pygit2.Commit).tree.diff_to_tree(repo[b].peel(pygit2.Commit).tree)
            diff.find_similar()
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot diff {a[:12]} and {b[:12]}: {exc}") from exc
        out = []
        for patch in diff:
            if patch is None:
                continue
            delta = patch.delta
            path = delta.new_file.path or delta.old_file.path
            if path == fmt.RECORD_DIR or path.startswith(fmt.RECORD_DIR + "/"):
                continue
            out.append((delta.status_char(), path, patch.text or ""))
        return out

    def code_entries(self, commit: str, trees: bool = False, visit: TreeVisitor | None = None) -> list[tuple[str, int, str]]:
        """(path, mode, blob id) of every file of a run's code state (the record directory left out).

        With trees, each directory too (mode 0o40000, tree id), before what it holds. visit, when given,
        sees each tree object before its entries are listed (tree id, its entries as (name, mode, id), the
        path prefix): a reader that validates a tree from someone else sees every name in it, duplicates
        included. Tree objects are read once per Store: walks of trees that share subtrees (a run's, its
        base's, the workspace's) cost what they do not share.
        """
        out: list[tuple[str, int, str]] = []
        try:  # iterative (a tree can nest deeper than the stack); paths bounded (PATH_MAX)
            root = str(self.repo[commit].peel(pygit2.Tree).id)
            stack = [(iter(self._tree_items(root, visit, "")), "")]
            while stack:
                entries, prefix = stack[-1]
                item = next(entries, None)
                if item is None:
                    stack.pop()
                    continue
                name, mode, oid = item
                path = prefix + name
                if path == fmt.RECORD_DIR:
                    continue
                if len(path) > 4096:
                    raise StorageError(f"the tree of {commit[:12]} holds a path longer than 4096 characters")
                if mode == FileMode.TREE:
                    if trees:
                        out.append((path, mode, oid))
                    stack.append((iter(self._tree_items(oid, visit, path + "/")), path + "/"))
                else:
                    out.append(item if not prefix else (path, mode, oid))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read the tree of {commit[:12]}: {exc}") from exc
        return out

    def changed_files(self, old: str, new: str, visit: TreeVisitor | None = None) -> dict[str, tuple[int, str] | None]:
        """Each path where the code states of old and new (commits or trees; the record directory left out)
        hold different files, with old's (mode, id) there, or None where old has no file.

        The trees are compared by id first: a subtree of one id on both sides is not read, so the cost
        follows the change, not the size of the trees. visit, as for code_entries, sees each tree object
        of new that is read: those that differ from old's.
        """
        out: dict[str, tuple[int, str] | None] = {}
        try:
            stack = [(str(self.repo[old].peel(pygit2.Tree).id), str(self.repo[new].peel(pygit2.Tree).id), "")]
            while stack:
                a, b, prefix = stack.pop()
                if a == b:
                    continue
                was = {name: (mode, oid) for name, mode, oid in self._tree_items(a, None, prefix)} if a else {}
                now = {name: (mode, oid) for name, mode, oid in self._tree_items(b, visit, prefix)} if b else {}
                for name in was.keys() | now.keys():
                    before, after = was.get(name), now.get(name)
                    path = prefix + name
                    if before == after or path == fmt.RECORD_DIR:
                        continue
                    if before is not None and after is not None and before[0] == after[0] == FileMode.TREE:
                        stack.append((before[1], after[1], path + "/"))
                        continue
                    if after is not None:  # a file of new, or new's subtree (each of its files: None)
                        if after[0] == FileMode.TREE:
                            stack.append(("", after[1], path + "/"))
                        else:
                            out.setdefault(path, None)
                    if before is not None:
                        if before[0] == FileMode.TREE:
                            stack.append((before[1], "", path + "/"))
                        else:
                            out[path] = before
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot compare the trees of {old[:12]} and {new[:12]}: {exc}") from exc
        return out

    def _tree_items(self, tree: str, visit: TreeVisitor | None, prefix: str) -> TreeItems:
        items = self._trees.get(tree)
        if items is None:
            items = _parsed_tree(self.repo, tree)
            if items is None:  # (each read of filemode builds an enum: once per entry, once per tree object)
                items = tuple((entry.name or "", int(entry.filemode), str(entry.id)) for entry in self.repo[tree].peel(pygit2.Tree))
            if len(self._trees) >= TREE_MEMO:
                self._trees.clear()
            self._trees[tree] = items
        if visit is not None:
            visit(tree, items, prefix)
        return items

    def hash_file(self, path: Path) -> str:
        """The blob id git would give the file's bytes (no filters applied)."""
        return str(pygit2.hashfile(str(path)))

    def needs_filters(self, paths: list[str]) -> bool:
        """Whether writing blobs to the work tree may need git's filters (autocrlf, eol, .gitattributes)."""
        for key in ("core.autocrlf", "core.eol"):
            try:
                value = self.repo.config[key]
            except KeyError:
                continue
            if str(value).lower() not in ("false", "lf"):
                return True
        return any(p == ".gitattributes" or p.endswith("/.gitattributes") for p in paths) or (
            Path(self.repo.path) / "info" / "attributes"
        ).exists()

    def worktree_bytes(self, oid: str, path: str, commit: str | None = None) -> bytes:
        """A blob's bytes as git would write them at path: line endings converted (core.autocrlf, core.eol,
        text/eol attributes, those of commit's .gitattributes too). External filter drivers are not run
        here (see filter_paths)."""
        from pygit2.enums import BlobFilter

        blob = self.repo.get(oid)
        if not isinstance(blob, pygit2.Blob):
            raise StorageError(f"git object {oid} is missing or not a file (run 'git fsck')")
        flags = BlobFilter.CHECK_FOR_BINARY | (BlobFilter.ATTRIBUTES_FROM_COMMIT if commit else 0)
        with pygit2.BlobIO(blob, as_path=path, flags=flags, commit_id=pygit2.Oid(hex=commit) if commit else None) as f:
            return f.read()

    def filter_paths(self, paths: list[str], commit: str) -> set[str]:
        """Those of paths whose `filter` attribute (the work tree's or commit's .gitattributes) names a
        driver configured with a smudge or process command, as Git LFS's: git itself must write them."""
        from pygit2.enums import AttrCheck

        drivers = {
            (e.name or "")[len("filter.") : (e.name or "").rindex(".")]
            for e in self.repo.config
            if (e.name or "").startswith("filter.") and (e.name or "").endswith((".smudge", ".process")) and e.value
        }
        if not drivers:
            return set()
        found = set()
        for path in paths:
            try:
                name = self.repo.get_attr(os.fsencode(path), "filter", AttrCheck.INCLUDE_COMMIT, commit)  # type: ignore[arg-type]
            except pygit2.GitError:
                continue
            if isinstance(name, str) and name in drivers:
                found.add(path)
        return found

    def lfs_object(self, pointer: bytes) -> tuple[str, Path] | None:
        """(oid, path in .git/lfs/objects) of a Git LFS pointer's object, or None if pointer is not one."""
        if len(pointer) >= 1024 or not pointer.startswith(_LFS_POINTER):
            return None
        oid = next((line[len(b"oid sha256:") :].decode("ascii", "replace") for line in pointer.splitlines()
                    if line.startswith(b"oid sha256:")), "")
        if len(oid) != 64 or any(c not in "0123456789abcdef" for c in oid):
            return None
        return oid, Path(self.git_common_dir(), "lfs", "objects", oid[:2], oid[2:4], oid)

    def lfs_oids(self, commit: str) -> list[str]:
        """The oids of the Git LFS objects a run's code tree points to (none when the repository does not use LFS)."""
        found = self.lfs_pointers(commit)
        if not found:
            return []
        tree = self.repo[commit].peel(pygit2.Tree)
        out = []
        for path in found[0]:
            obj = tree[path]
            known = self.lfs_object(obj.data) if isinstance(obj, pygit2.Blob) else None
            if known is not None:
                out.append(known[0])
        return out

    def _index_version(self) -> int | None:
        """The version in the index file's header; None without a readable one."""
        try:
            with open(Path(self.repo.path) / "index", "rb") as f:
                head = f.read(8)
        except OSError:
            return None
        return int.from_bytes(head[4:8], "big") if len(head) == 8 and head[:4] == b"DIRC" else None

    def sparse_outside(self, paths: list[str]) -> set[str]:
        """Those of paths a checkout leaves out of the work tree, as git does: those the index marks
        skip-worktree now (a sparse checkout, or set by hand), and in a cone-mode sparse checkout those
        outside the cone (`git sparse-checkout list`), new to the index or not."""
        import subprocess

        from pygit2 import C, ffi  # type: ignore[attr-defined]

        out: set[str] = set()
        if self._index_version() != 2:  # (git writes version 2 when no entry has extended flags such as skip-worktree)
            index = self.repo.index
            wanted = set(paths)
            for i in range(C.git_index_entrycount(index._index)):
                centry = C.git_index_get_byindex(index._index, i)
                if centry != ffi.NULL and centry.flags_extended & _snapshot._SKIP_WORKTREE:
                    path = ffi.string(centry.path).decode("utf-8", "surrogateescape")
                    if path in wanted:
                        out.add(path)
        try:
            cone = self.repo.config.get_bool("core.sparseCheckout") and self.repo.config.get_bool("core.sparseCheckoutCone")
        except KeyError:
            cone = False
        if not cone:
            return out
        env = {**os.environ, "GIT_DIR": self.repo.path, "GIT_WORK_TREE": str(self.root)}
        env.pop("GIT_INDEX_FILE", None)
        proc = subprocess.run(["git", "sparse-checkout", "list"], cwd=self.root, capture_output=True, env=env, check=False)
        if proc.returncode != 0:
            raise StorageError(f"git sparse-checkout list failed: {proc.stderr.decode(errors='replace').strip()}")
        dirs = [d.strip("/") for d in proc.stdout.decode("utf-8", "surrogateescape").splitlines() if d.strip("/")]

        def inside(path: str) -> bool:
            parent = path.rpartition("/")[0]
            return not parent or any(path.startswith(d + "/") or d.startswith(parent + "/") or d == parent for d in dirs)

        return out | {p for p in paths if not inside(p)}

    def mark_skip_worktree(self, paths: list[str]) -> None:
        """Set the skip-worktree bit of these index entries (git update-index --skip-worktree)."""
        import subprocess

        if not paths:
            return
        env = {**os.environ, "GIT_DIR": self.repo.path, "GIT_WORK_TREE": str(self.root)}
        env.pop("GIT_INDEX_FILE", None)
        proc = subprocess.run(
            ["git", "update-index", "-z", "--skip-worktree", "--stdin"], cwd=self.root, capture_output=True, env=env, check=False,
            input=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths),
        )
        if proc.returncode != 0:
            raise StorageError(f"git update-index --skip-worktree failed: {proc.stderr.decode(errors='replace').strip()}")

    def ignored_by(self, gitignores: dict[str, str], paths: list[str]) -> set[str]:
        """Those of paths that these .gitignore blobs (path -> blob id), in place of the workspace's, would ignore."""
        from gitexp.store.ignore import ignored_under

        return ignored_under(self.repo, self.state_dir / "tmp", {p: self.blob(o) for p, o in gitignores.items()}, paths)

    def has_object(self, oid: str) -> bool:
        return pygit2.Oid(hex=oid) in self.repo

    def blob(self, oid: str) -> bytes:
        obj = self.repo.get(oid)
        if not isinstance(obj, pygit2.Blob):
            raise StorageError(f"git object {oid} is missing or not a file (run 'git fsck')")
        return obj.data

    def code_tree(self, commit: str) -> str:
        """The id of a run's tree without the record directory (written if new)."""
        builder = self.repo.TreeBuilder(self.repo[commit].peel(pygit2.Tree))
        if builder.get(fmt.RECORD_DIR) is not None:
            builder.remove(fmt.RECORD_DIR)
        return str(builder.write())

    def file_entry(self, tree: str, path: str) -> tuple[int, str] | None:
        """(mode, id) of the file (blob, link or submodule) at path in tree, as code_entries lists it; None
        when there is none there (a directory, or under the record directory, counts as none). Looks the
        path up, without walking the tree."""
        if path == fmt.RECORD_DIR or path.startswith(fmt.RECORD_DIR + "/"):
            return None
        try:
            entry = self.repo[pygit2.Oid(hex=tree)].peel(pygit2.Tree)[path]
        except (KeyError, ValueError, TypeError, pygit2.GitError):
            return None
        mode = int(entry.filemode)
        return None if mode == FileMode.TREE else (mode, str(entry.id))

    def tree_of(self, rev: str) -> str | None:
        try:
            return str(self.repo.revparse_single(rev).peel(pygit2.Tree).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def index_tree(self) -> str | None:
        """The tree of what the user has staged (None with conflicts or without an index)."""
        path = Path(self.repo.path) / "index"
        if not path.exists():
            return None
        try:
            return str(pygit2.Index(str(path)).write_tree(self.repo))
        except pygit2.GitError:
            return None

    def index_has_conflicts(self) -> bool:
        path = Path(self.repo.path) / "index"
        try:
            return path.exists() and pygit2.Index(str(path)).conflicts is not None
        except pygit2.GitError:
            return True

    def move_head(
        self, commit: str | None, branch: str | None, index_tree: str | None, worktree: str, rewritten: Collection[str] = ()
    ) -> str:
        """Point HEAD at branch (if it is at commit) or detach it at commit; set the index to index_tree.

        worktree is the tree the work tree now holds: an index entry whose blob differs from it gets no
        stat data, as git gives an entry it cannot vouch for, so that git hashes the file again. (The
        stat data kept from the old index for the same blob would match a file rewritten in place within
        the same second, and git would show it unchanged.) So does each path of rewritten (files the
        checkout wrote): git trusts a recorded size, and the same blob may be written with other line
        endings than the file it was hashed from.
        Returns a description of where HEAD is now. Only `gitexp checkout` calls this.
        """
        repo = self.repo
        where = "unchanged"
        try:
            head_commit = None if repo.head_is_unborn else str(repo.head.target)
            if commit is not None and commit != head_commit:
                ref = repo.references.get(f"refs/heads/{branch}") if branch else None
                elsewhere = ref is not None and branch is not None and repo.branches.local[branch].is_checked_out()
                if ref is not None and str(ref.target) == commit and not elsewhere:
                    repo.set_head(ref.name)
                    where = f"on branch {branch}"
                else:
                    repo.set_head(pygit2.Oid(hex=commit))
                    where = f"detached at {commit[:10]}, the run's base commit"
            index = repo.index
            staged = index_tree if index_tree is not None else commit
            if staged is not None:
                tree = repo[staged].peel(pygit2.Tree)
                index.read_tree(tree)
                paths = [d.old_file.path for d in tree.diff_to_tree(repo[worktree].peel(pygit2.Tree)).deltas]
                _forget_stat(index, [*paths, *rewritten])
            index.write()
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot update HEAD or the index: {exc}") from exc
        return where

    def forget_stat(self, paths: Collection[str]) -> None:
        """Drop the stat data of these index entries (files rewritten behind the index's back), so that
        git hashes them again instead of trusting a recorded size; nothing else of the index changes."""
        if not paths:
            return
        try:
            index = self.repo.index
            _forget_stat(index, paths)
            index.write()
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot update the index: {exc}") from exc

    def switch_branch(self, name: str) -> None:
        """Attach HEAD to refs/heads/<name> and set the index to its tree (used after a checkout)."""
        ref = self.repo.references[f"refs/heads/{name}"]
        try:
            self.repo.set_head(ref.name)
            index = self.repo.index
            index.read_tree(self.repo[ref.target].peel(pygit2.Tree))
            index.write()
        except pygit2.GitError as exc:
            raise StorageError(f"cannot switch to {name}: {exc}") from exc

    def create_branch(self, name: str, tree: str, parent: str | None, message: str) -> str:
        """refs/heads/<name> at a new commit of tree on parent; refuses an existing or invalid name."""
        ref = f"refs/heads/{name}"
        if not pygit2.reference_is_valid_name(ref) or name == "HEAD":
            raise GitexpError(f"invalid branch name {name!r} (see git check-ref-format; HEAD is reserved)")
        if ref in self.repo.references:
            raise GitexpError(f"a branch named {name!r} already exists (choose another name)")
        user, email = self.identity()
        sig = pygit2.Signature(user, email)
        try:
            oid = self.repo.create_commit(None, sig, sig, message, pygit2.Oid(hex=tree), [pygit2.Oid(hex=parent)] if parent else [])
            self.repo.references.create(ref, oid, force=False)
        except pygit2.GitError as exc:
            raise StorageError(f"cannot create branch {name!r}: {exc}") from exc
        return str(oid)

    def delete_branch(self, name: str, commit: str) -> None:
        """Delete refs/heads/<name> if it still points at commit (undoing create_branch)."""
        ref = self.repo.references.get(f"refs/heads/{name}")
        if ref is not None and str(ref.target) == commit:
            ref.delete()

    def operation_in_progress(self) -> str | None:
        """The git operation left unfinished in this work tree (a merge, a rebase...), or None."""
        state = pygit2.enums.RepositoryState(self.repo.state())
        return None if state == pygit2.enums.RepositoryState.NONE else str(state.name).lower().replace("_", " ")

    def held_by_a_ref(self, commit: str) -> bool:
        """Whether a branch or tag holds commit (points at it or at a descendant)."""
        target = pygit2.Oid(hex=commit)
        for name in self.repo.references:
            if not name.startswith(("refs/heads/", "refs/tags/")):
                continue
            try:
                tip = self.repo.references[name].peel(pygit2.Commit).id
            except (KeyError, ValueError, pygit2.GitError):
                continue
            if tip == target or self.repo.descendant_of(tip, target):
                return True
        return False

    def blob_size(self, oid: str) -> int:
        obj = self.repo.get(oid)
        return obj.size if isinstance(obj, pygit2.Blob) else 0

    def remote_names(self) -> list[str]:
        return [n for n in self.repo.remotes.names() if n]

    def config_values(self, key: str) -> list[str]:
        try:
            return [v for v in self.repo.config.get_multivar(key) if v is not None]
        except (KeyError, pygit2.GitError):
            return []

    def local_data_remotes(self) -> dict[str, str]:
        """Data remotes kept in this clone's .git/config ([gitexp-remote "NAME"] url = ...), not shared."""
        found = {}
        for entry in self.repo.config:
            name = entry.name or ""
            if name.startswith("gitexp-remote.") and name.endswith(".url") and entry.value:
                found[name[len("gitexp-remote.") : -len(".url")]] = entry.value
        return found

    def set_local_data_remote(self, name: str, url: str) -> None:
        try:
            self.repo.config[f"gitexp-remote.{name}.url"] = url
        except pygit2.GitError as exc:
            raise StorageError(f"cannot write .git/config: {exc}") from exc

    def add_config_value(self, key: str, value: str) -> None:
        """Append a value to a multi-valued key of the repository's .git/config (if not there yet)."""
        import re

        try:
            self.repo.config.set_multivar(key, "^" + re.escape(value) + "$", value)
        except pygit2.GitError as exc:
            raise StorageError(f"cannot set {key} in .git/config: {exc}") from exc

    def annotate(self, commit: str, annotation: dict[str, Any]) -> None:
        """Give a run commit the tags and note of annotation that its note does not have yet.

        Used to carry what was set on a run's `running` commit to its final one: anything set on the
        final commit meanwhile (by `gitexp tag`/`note`, which follow the run's ref) wins.
        """
        self.update_annotation(commit, lambda current: {**annotation, **current})

    def update_annotation(self, commit: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Apply change to a run's tags and note as they are now in NOTES_REF; return the result.

        A compare-and-swap: read the notes commit, apply change to the run's note in it, write a notes
        commit whose parent is the one read, and move the ref only if it still points there. If another
        process moved the ref or holds its lock meanwhile, start over after a short random wait (for up to
        NOTES_RETRY_SECONDS), so no concurrent update is ever lost: change must be idempotent.
        """
        import random
        import time

        deadline = time.monotonic() + NOTES_RETRY_SECONDS
        wait = 0.005
        while True:
            try:
                return self._annotate_once(commit, change)
            except pygit2.GitError as exc:  # moved meanwhile: "old reference value does not match"
                if "does not match" not in str(exc):
                    raise StorageError(f"cannot write {fmt.NOTES_REF}: {exc}") from exc
                why = "other processes kept changing it"
            except OSError as exc:  # libgit2 reports a ref held by another process as an OSError
                if ".lock" not in str(exc) or ("failed to lock" not in str(exc) and "File exists" not in str(exc)):
                    raise StorageError(f"cannot write {fmt.NOTES_REF}: {exc.strerror or exc}") from exc
                why = (f"{exc}; another process held that lock the whole time (if no git or gitexp command "
                       "is running, remove that file)")
            if time.monotonic() > deadline:
                raise StorageError(f"cannot update {fmt.NOTES_REF} after {NOTES_RETRY_SECONDS} s of retries: {why}")
            time.sleep(random.uniform(wait / 2, wait))
            wait = min(wait * 2, 0.2)

    def _annotate_once(self, commit: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        repo = self.repo
        ref = repo.references.get(fmt.NOTES_REF)
        try:
            tip = ref.peel(pygit2.Commit) if ref is not None else None
        except (KeyError, ValueError) as exc:
            raise StorageError(f"{fmt.NOTES_REF} does not point to a commit (run 'git fsck'): {exc}") from exc
        tree = tip.tree if tip is not None else None
        path, blob = _note_in(repo, tree, commit)
        current = fmt.parse_annotation(blob.data.decode("utf-8", "replace")) if blob is not None else {}
        new = change(current)
        if blob is not None and new == current:
            return new
        user, email = self.identity()
        sig = pygit2.Signature(user, email)
        root = _with_note(repo, tree, path, repo.create_blob(fmt.to_json(new)))
        parents = [tip.id] if tip is not None else []
        oid = repo.create_commit(None, sig, sig, f"gitexp: tags and note of {commit}\n", root, parents)
        self._swap_ref(fmt.NOTES_REF, oid, tip.id if tip is not None else None, "gitexp: tags and note")
        return new

    def read_record(self, commit: str, filename: str) -> bytes | None:
        """A record file's bytes (None when absent); UnreadableRecord when larger than safeload.MAX_LARGE_BYTES."""
        try:
            obj = self.repo[commit].peel(pygit2.Commit)
            entry = obj.tree[f"{fmt.RECORD_DIR}/{filename}"]
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if not isinstance(entry, pygit2.Blob):
            return None
        if entry.size > MAX_LARGE_BYTES:
            raise UnreadableRecord(f"{fmt.RECORD_DIR}/{filename} of run {commit[:12]}", f"it is larger than {MAX_LARGE_BYTES >> 20} MiB")
        return entry.data

    def record_names(self, commit: str, subdir: str) -> list[str]:
        """The names ("subdir/name") of the files in a directory of a run's record ([] when it has none)."""
        try:
            tree = self.repo[commit].peel(pygit2.Commit).tree[f"{fmt.RECORD_DIR}/{subdir}"]
        except (KeyError, ValueError, pygit2.GitError):
            return []
        if not isinstance(tree, pygit2.Tree):
            return []
        return [f"{subdir}/{entry.name}" for entry in tree if entry.name and entry.type_str == "blob"]

    def commits_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        prefix = prefix.lower()
        return [(n, c) for n, c in self.run_refs() if c.startswith(prefix)]

    def log_oneline(self, commit: str, limit: int) -> list[str]:
        """`git log --oneline` of commit: short id and subject, newest first."""
        walker = self.repo.walk(pygit2.Oid(hex=commit), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
        lines = []
        for c in walker:
            lines.append(f"{c.short_id} {c.message.splitlines()[0] if c.message else ''}")
            if len(lines) >= limit:
                break
        return lines

    # -- what env.json says about the code state --------------------------------

    def submodule_states(self, tree: str, base: str | None) -> list[dict[str, Any]]:
        """Each submodule of the work tree: path, commit recorded in tree, commit at base, moved, modified inside."""
        repo = self.repo
        if self.bare or not (self.root / ".gitmodules").exists():
            return []
        try:
            paths = repo.listall_submodules()
        except pygit2.GitError:
            return []
        root = repo[tree].peel(pygit2.Tree)
        base_tree = repo[base].peel(pygit2.Tree) if base else None
        out = []
        for path in sorted(paths):
            recorded = _entry_id(root, path)
            at_base = _entry_id(base_tree, path) if base_tree is not None else None
            modified = False
            try:
                sub = pygit2.Repository(str(self.root / path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
                modified = any(
                    flags not in (pygit2.enums.FileStatus.CURRENT, pygit2.enums.FileStatus.IGNORED)
                    for flags in sub.status(untracked_files="normal", ignored=False).values()
                )
                checked_out = True
            except pygit2.GitError:
                checked_out = False  # not initialised: recorded as the index has it
            out.append(
                {"path": path, "commit": recorded, "base_commit": at_base, "moved": recorded != at_base,
                 "modified": modified, "checked_out": checked_out}
            )
        return out

    def top_attributes_use_lfs(self, tree: str) -> bool:
        """Whether the top .gitattributes of tree (or of a commit's tree) sets filter=lfs."""
        try:
            root = self.repo[tree].peel(pygit2.Tree)
            obj = root[".gitattributes"] if ".gitattributes" in root else None
        except (KeyError, ValueError, pygit2.GitError):
            return False
        return isinstance(obj, pygit2.Blob) and b"filter=lfs" in obj.data

    def info_attributes_use_lfs(self) -> bool:
        """Whether this clone's .git/info/attributes sets filter=lfs."""
        info = Path(self.git_common_dir(), "info", "attributes")
        return info.is_file() and b"filter=lfs" in info.read_bytes()

    def lfs_pointers(self, tree: str) -> tuple[list[str], list[str]] | None:
        """(paths of tree that are Git LFS pointers, those whose object is not in .git/lfs/objects), or None
        when the repository does not use LFS (no `filter=lfs` in its top .gitattributes or info/attributes)."""
        repo = self.repo
        root = repo[tree].peel(pygit2.Tree)
        if not self.top_attributes_use_lfs(tree) and not self.info_attributes_use_lfs():
            return None
        objects = Path(self.git_common_dir(), "lfs", "objects")
        pointers: list[str] = []
        missing: list[str] = []

        def walk(t: pygit2.Tree, prefix: str) -> None:
            for entry in t:
                path = prefix + (entry.name or "")
                if entry.filemode == FileMode.TREE:
                    if path != fmt.RECORD_DIR:
                        walk(repo[entry.id].peel(pygit2.Tree), path + "/")
                elif entry.filemode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                    blob = repo[entry.id]
                    if isinstance(blob, pygit2.Blob) and blob.size < 1024 and blob.data.startswith(_LFS_POINTER):
                        pointers.append(path)
                        oid = next((line[len(b"oid sha256:") :].decode() for line in blob.data.splitlines()
                                    if line.startswith(b"oid sha256:")), "")
                        if len(oid) < 5 or not (objects / oid[:2] / oid[2:4] / oid).is_file():
                            missing.append(path)

        walk(root, "")
        return pointers, missing

    # -- small JSON documents kept on a ref (aliases) -------------------------

    def read_ref_file(self, refname: str, filename: str) -> tuple[str | None, bytes | None]:
        """(commit the ref points at or None, bytes of filename in its tree or None)."""
        ref = self.repo.references.get(refname)
        if ref is None:
            return None, None
        try:
            commit = self.repo[ref.target].peel(pygit2.Commit)
            entry = commit.tree[filename]
        except (KeyError, ValueError, pygit2.GitError):
            return str(ref.target), None
        return str(commit.id), entry.data if isinstance(entry, pygit2.Blob) else None

    def write_ref_file(self, refname: str, filename: str, data: bytes, message: str, old: str | None) -> bool:
        """Commit a tree holding only filename on top of old, and move refname from old to it (compare-and-swap).

        False when the ref is no longer at old (someone else moved it: read again and retry).
        """
        repo = self.repo
        user, email = self.identity()
        sig = pygit2.Signature(user, email)
        ref = None
        try:
            builder = repo.TreeBuilder()
            builder.insert(filename, repo.create_blob(data), FileMode.BLOB)
            parents = [pygit2.Oid(hex=old)] if old else []
            oid = repo.create_commit(None, sig, sig, message, builder.write(), parents)
            ref = repo.references.get(refname)
            if ref is None and old is None:
                repo.references.create(refname, oid, force=False)
            elif ref is None or str(ref.target) != old:
                return False
            else:
                ref.set_target(oid, message)  # libgit2 refuses if the ref moved since it was read
        except pygit2.AlreadyExistsError:
            return False
        except pygit2.GitError as exc:
            if ref is not None and str(repo.references[refname].target) != old:
                return False
            raise StorageError(f"cannot update {refname}: {exc}") from exc
        return True

    # -- demo support --------------------------------------------------------

    @staticmethod
    def init_repository(path: Path) -> Store:
        return Store(pygit2.init_repository(str(path), initial_head="main"))

    def commit_workspace(self, message: str, signature: tuple[str, str]) -> str:
        """Stage everything and commit on the current branch (for repos gitexp made itself)."""
        index = self.repo.index
        index.add_all()
        index.write()
        sig = pygit2.Signature(*signature)
        parents = [] if self.repo.head_is_unborn else [self.repo.head.target]
        return str(self.repo.create_commit("HEAD", sig, sig, message, index.write_tree(), parents))

    # -- files written during a run ----------------------------------------------

    def with_files(self, tree: str, root: Path, paths: list[str]) -> str:
        """tree with the regular files at paths (relative to root) as they are now: same path, mode kept.

        A path `git add` would not take is left as tree has it: under .git/ or .gitexp/, through a
        symlink, not a regular file (or not a file in tree), or new and ignored (by the repository's
        rules). A new file gets its executable bit from the disk. In the repository's own work tree
        the blobs go through git's filters, as the snapshot's do.
        """
        import stat
        from pathlib import PurePosixPath

        repo = self.repo
        real_root = os.path.realpath(root)
        filtered = real_root == os.path.realpath(self.root)
        index = pygit2.Index()
        rel = ""
        try:
            index.read_tree(repo[tree].peel(pygit2.Tree))
            for rel in dict.fromkeys(PurePosixPath(p).as_posix() for p in paths):
                full = os.path.join(root, rel)
                if rel.split("/")[0] in (".git", fmt.RECORD_DIR) or os.path.realpath(full) != os.path.join(real_root, rel):
                    continue  # (a path through a symlink, or a symlink itself)
                mode = index[rel].mode if rel in index else None
                if not os.path.isfile(full) or (mode is None and repo.path_is_ignored(rel)):
                    continue
                if mode is None:
                    mode = FileMode.BLOB_EXECUTABLE if os.stat(full).st_mode & stat.S_IXUSR else FileMode.BLOB
                elif mode not in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
                    continue
                blob = repo.create_blob_fromworkdir(rel) if filtered else repo.create_blob_fromdisk(full)
                index.add(pygit2.IndexEntry(rel, blob, mode))
            return str(index.write_tree(repo))
        except (OSError, pygit2.GitError) as exc:
            raise StorageError(f"cannot put {rel} in the run's tree: {exc}") from exc


def _run_pairs(refs: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """(run name, commit id) of each (ref name, id) under refs/experiments/ whose name a run can have; the
    others named in the problems."""
    from gitexp.names import readable

    prefix = fmt.REF_PREFIX
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for refname, oid in refs:
        if refname.startswith(prefix):
            name = refname[len(prefix) :]
            if not readable(name):
                problems.append(
                    f"skipped {refname!a}: not a run name (A-Z a-z 0-9 . _ -, no '/'); "
                    f"rename it with git update-ref refs/experiments/NEW {refname!a} && git update-ref -d {refname!a}"
                )
                continue
            pairs.append((name, oid))
    return pairs, problems


# The modes git writes, and one entry of a tree object as git writes it: its mode in octal, a space, its
# name, NUL, its 20-byte id.
_MODE = {text: int(text, 8) for text in (b"40000", b"100644", b"100755", b"120000", b"160000")}
_TREE_ENTRY = re.compile(rb"(" + b"|".join(_MODE) + rb") ([^\0]+)\0(.{20})", re.DOTALL)


def _parsed_tree(repo: pygit2.Repository, tree: str) -> TreeItems | None:
    """A tree object's entries read from its bytes (a third of the time of libgit2's entry objects: 2,000
    entries in 0.5 ms); None, for libgit2 to read it, unless it is a SHA-1 tree of well-formed entries
    whose modes are the five git writes (libgit2 would report others normalised) and names are UTF-8."""
    if len(tree) != 40:
        return None
    try:
        kind, data = repo.odb.read(tree)
    except (KeyError, ValueError, pygit2.GitError):
        return None
    if kind != pygit2.enums.ObjectType.TREE:
        return None
    found = _TREE_ENTRY.findall(data)
    if sum(len(mode) + len(name) for mode, name, _ in found) + 22 * len(found) != len(data):
        return None  # (matches never overlap: they cover the whole object only if they are all of it)
    try:
        return tuple([(name.decode(), _MODE[mode], oid.hex()) for mode, name, oid in found])
    except UnicodeDecodeError:
        return None


@contextmanager
def bulk_reading() -> Iterator[None]:
    """While reading every run's commit once (100,000 of them: `gitexp list`), as `git cat-file` does: no
    hash check of each object read (git checks objects as they arrive, in fetch and index-pack, and in
    fsck; not on every read), nothing kept in libgit2's object cache (each is read once), and no cyclic
    garbage collection (summaries make no cycles; collecting while they are made cost a quarter of the
    time). Together: 1.6 s down to 0.6 s for 100,000 commits."""
    import gc

    collecting = gc.isenabled()
    gc.disable()
    pygit2.settings.enable_strict_hash_verification(False)
    pygit2.settings.enable_caching(False)
    try:
        yield
    finally:
        pygit2.settings.enable_caching(True)
        pygit2.settings.enable_strict_hash_verification(True)
        if collecting:
            gc.enable()


def _note_in(repo: pygit2.Repository, tree: pygit2.Tree | None, commit: str) -> tuple[list[str], pygit2.Blob | None]:
    """Where the note of commit is in a notes tree (and its blob), or where a new one goes.

    Fan-out directories ("ab/cdef...", as git writes once there are many notes) are followed, as git and
    libgit2 do; a new note goes into the deepest existing one that matches.
    """
    path: list[str] = []
    rest = commit
    while tree is not None:
        if rest in tree:
            entry = tree[rest]
            return path + [rest], entry if isinstance(entry, pygit2.Blob) else None
        sub = tree[rest[:2]] if rest[:2] in tree else None
        if not isinstance(sub, pygit2.Tree):
            break
        path.append(rest[:2])
        rest, tree = rest[2:], sub
    return path + [rest], None


def _with_note(repo: pygit2.Repository, tree: pygit2.Tree | None, path: list[str], blob: pygit2.Oid) -> pygit2.Oid:
    """A copy of tree with blob at path (the directories on the way written anew)."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    if len(path) == 1:
        builder.insert(path[0], blob, FileMode.BLOB)
    else:
        sub = tree[path[0]] if tree is not None and path[0] in tree else None
        builder.insert(path[0], _with_note(repo, sub if isinstance(sub, pygit2.Tree) else None, path[1:], blob), FileMode.TREE)
    return builder.write()


_LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def _forget_stat(index: pygit2.Index, paths: Collection[str]) -> None:
    for path in paths:
        entry = index[path] if path in index else None
        if entry is not None:
            index.add(pygit2.IndexEntry(entry.path, entry.id, entry.mode))  # no stat data


def _entry_id(tree: pygit2.Tree | None, path: str) -> str | None:
    if tree is None:
        return None
    try:
        return str(tree[path].id)
    except KeyError:
        return None


def _message(commit: pygit2.Commit) -> str:
    """A commit's message as text, whatever its encoding header says (an unknown encoding is read as UTF-8)."""
    raw = commit.raw_message
    if len(raw) > MAX_MESSAGE_BYTES:
        raise UnreadableRecord(f"the commit message of {str(commit.id)[:12]}", f"it is larger than {MAX_MESSAGE_BYTES >> 20} MiB")
    return _decode(raw, commit.message_encoding or "")


def _decode(raw: bytes, encoding: str) -> str:
    """A message in the encoding its commit's header names (UTF-8 when none, or one Python does not know)."""
    try:
        return raw.decode(encoding or "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _offset(when: datetime) -> int:
    delta = when.utcoffset()
    return int(delta.total_seconds() // 60) if delta is not None else 0
