"""One spec file on disk -> its YAML document, within limits, and where each value was written.

spec.py walks the document; this module finds the files (`_expand`), reads one safely (a FIFO,
a device, a huge file or a YAML bomb is refused, not read) and turns ruamel's positions into
file:line:column. It never talks to GA, so `ga-sync validate` runs offline and starts fast.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import Problem
from .model import Funnel, Goal, Location
from .redact import excerpt


# Limits that keep one odd file from costing unbounded time or memory (docs/spec.md, "Limits").
# The YAML parser reads about 10 µs a byte and slower per value, so the budgets are in both.
FILE_BYTES_MAX = 256 * 1024  # the largest real spec is ~15 KB
GOALS_MAX = 500  # per file; a property holds at most 50 custom key events anyway
PROPERTIES_MAX = 500  # per file
YAML_VALUES_MAX = 10_000  # scalars, lists and mappings (and aliases) in one file
YAML_DEPTH_MAX = 32  # a spec is 4 levels deep
EXTENDS_DEPTH_MAX = 32  # files in one `extends` chain
EXTENDS_PATH_MAX = 1024  # characters in an `extends:` path
PROBLEMS_PER_FILE_MAX = 100  # then one line says the rest were not listed


# ---------------------------------------------------------------------------------------------
# Where things are


def _loc(file: str, pair: Any) -> Location:
    """ruamel keeps 0-based (line, column); people and editors count from 1."""
    try:
        return Location(file, int(pair[0]) + 1, int(pair[1]) + 1)
    except (TypeError, IndexError, ValueError):
        return Location(file)


def _at_node(file: str, node: Any) -> Location:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return Location(file, 1, 1)
    return _loc(file, (lc.line, lc.col))


def _at_key(file: str, mapping: Any, key: Any) -> Location:
    try:
        return _loc(file, mapping.lc.key(key))
    except (AttributeError, KeyError, TypeError):
        return _at_node(file, mapping)


def _at_value(file: str, mapping: Any, key: Any) -> Location:
    try:
        return _loc(file, mapping.lc.value(key))
    except (AttributeError, KeyError, TypeError):
        return _at_key(file, mapping, key)


def _at_item(file: str, seq: Any, index: int) -> Location:
    try:
        return _loc(file, seq.lc.item(index))
    except (AttributeError, KeyError, TypeError, IndexError):
        return _at_node(file, seq)


_SCALAR_TOKEN = re.compile(r"[^\s,\[\]{}#]+")


def _literal(parsed: _Parsed, loc: Location) -> str | None:
    """A plain scalar as written at `loc` (after any `&anchor` or `!tag`); None for an alias."""
    if loc.line is None or loc.column is None or loc.line > len(parsed.lines):
        return None
    text = parsed.lines[loc.line - 1]
    pos = loc.column - 1
    while True:
        token = _SCALAR_TOKEN.match(text, pos)
        if token is None:
            return None
        if token.group().startswith(("&", "!")):  # anchor or tag: the value follows
            pos = token.end()
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            continue
        return None if token.group().startswith("*") else token.group()


def _where(loc: Location) -> str:
    """A short back-reference for messages that point at a second place."""
    if loc.line is None:
        return loc.file
    return f"line {loc.line}:{loc.column}"


# ---------------------------------------------------------------------------------------------
# One file


class _TooManyProblems(Exception):
    """Raised by _Problems when a file has said enough; the parse of that file stops there."""


class _Problems(list):  # type: ignore[type-arg]
    """A file's problems, at most PROBLEMS_PER_FILE_MAX of them (bounded output, bounded time)."""

    def append(self, problem: Problem) -> None:
        if len(self) >= PROBLEMS_PER_FILE_MAX:
            raise _TooManyProblems
        super().append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)


@dataclass
class _Parsed:
    """What one YAML file says, validated key by key (before `extends` is merged)."""

    file: str  # as shown in messages
    path: Path  # resolved; the cache key
    problems: list[Problem] = field(default_factory=_Problems)
    failure: str | None = None  # why the file could not be read as a mapping
    root: Location | None = None
    present: set[str] = field(default_factory=set)  # keys written, valid or not
    fields: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    goals: list[Goal] | None = None
    extends: tuple[str, Location] | None = None
    lines: list[str] = field(default_factory=list, repr=False)  # the text, for literals
    sources: dict[int, Location] = field(default_factory=dict)  # id(goal) -> where `from:` is
    funnels: list[Funnel] | None = None
    steps_at: dict[int, tuple[Location, ...]] = field(default_factory=dict)  # id(funnel) -> steps

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


@dataclass(frozen=True)
class _Unreadable:
    """Why a file cannot be a spec: `failure` ends "cannot extend `x`: ...", `message` stands alone."""

    failure: str
    message: str


def _unreadable(path: Path) -> _Unreadable | None:
    """Why `path` is no regular file that can be opened, without opening it; None if it is one.

    A FIFO would block the read, a device never end, a directory or socket fail oddly: so the
    kind of file is looked at first (with symlinks followed).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return _Unreadable("it is a broken symbolic link (what it points to does not exist)",
                               "is a broken symbolic link (what it points to does not exist); "
                               "fix or remove the link")
        return _Unreadable("it does not exist", "file not found; check the path")
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop",
                               "is a symbolic link loop (links that point at each other); fix "
                               "or remove the link")
        reason = (exc.strerror if isinstance(exc, OSError) else None) or "not a valid path"
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check the path and its permissions")
    if stat.S_ISDIR(mode):
        return _Unreadable("it is a directory", "is a directory, not a spec file")
    if not stat.S_ISREG(mode):
        what = _not_regular(mode)
        return _Unreadable(f"it is {what}, not a regular file",
                           f"is {what}, not a regular file; a goal spec is a .yaml text file")
    return None


def _too_big(size: int | None) -> _Unreadable:
    known = f" ({size:,} bytes)" if size is not None else ""
    return _Unreadable(f"it is larger than {_size(FILE_BYTES_MAX)}",
                       f"is larger than {_size(FILE_BYTES_MAX)}{known}, the most a goal spec may "
                       f"be; check the path (a spec is a short text file)")


def _read_bytes(path: Path) -> bytes | _Unreadable:
    """At most FILE_BYTES_MAX bytes of a regular file, or why not."""
    why = _unreadable(path)
    if why is not None:
        return why
    try:
        # O_NONBLOCK: should the file turn into a FIFO between stat and open, open still returns.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                             "remove the link")
        reason = exc.strerror or str(exc)
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check its permissions")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = _not_regular(info.st_mode)
            return _Unreadable(f"it is {what}, not a regular file",
                               f"is {what}, not a regular file; a goal spec is a .yaml text file")
        if info.st_size > FILE_BYTES_MAX:
            return _too_big(info.st_size)
        chunks: list[bytes] = []
        left = FILE_BYTES_MAX + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _Unreadable(f"it cannot be read ({reason})",
                           f"cannot read the file ({reason}); check its permissions")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > FILE_BYTES_MAX:
        return _too_big(None)  # it grew, or stat did not know (/proc)
    return data


class _ValueBudget(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too many values")
        self.mark = mark


class _BoundedComposer(Composer):
    """ruamel's composer, counting values: the parser costs time per value, aliases included."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._values = getattr(self, "_values", 0) + 1
        if self._values > YAML_VALUES_MAX:
            raise _ValueBudget(self.parser.peek_event().start_mark)
        return super().compose_node(parent, index)


def _yaml_message(exc: MarkedYAMLError) -> str:
    """ruamel's description of a syntax error, without the values it may quote from the file."""
    if isinstance(exc, MaxDepthExceededError):
        return (f"nested more than {YAML_DEPTH_MAX} levels deep; a goal spec is 4 levels deep "
                f"(spec, goals, goal, value)")
    if isinstance(exc, DuplicateKeyError):
        problem = str(exc.problem or "").split(" with value ", 1)[0]
        return f"{excerpt(problem[:400], 80)}; a key may appear only once in a mapping"
    parts = [excerpt(str(part)[:400], 80) for part in (exc.context, exc.problem) if part]
    return ": ".join(parts) + (" (the mistake may be just before this point, e.g. an unclosed "
                               "bracket or quote)")


def _read_yaml(parsed: _Parsed) -> Any:
    """The file's YAML document, or None after recording why it could not be read."""
    file, out = parsed.file, parsed.problems
    data = _read_bytes(parsed.path)
    if isinstance(data, _Unreadable):
        parsed.failure = data.failure
        out.append(Problem(file, None, None, data.message))
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.failure = "it is not UTF-8 text"
        out.append(Problem(file, None, None, f"not UTF-8 text (bad byte at offset {exc.start}); "
                                             f"save the file as UTF-8"))
        return None
    parsed.lines = text.splitlines()
    parsed.failure = "it is not valid YAML"  # until it is read
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    yaml.max_depth = YAML_DEPTH_MAX
    try:
        with warnings.catch_warnings():  # e.g. a reused anchor: the library never prints
            warnings.simplefilter("ignore")
            document = yaml.load(text)
    except _ValueBudget as exc:
        mark = exc.mark
        out.append(Problem(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                           f"more than {YAML_VALUES_MAX:,} values in one file; a goal spec has "
                           f"at most {GOALS_MAX} goals: check that this is a goal spec"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        out.append(Problem(file, line, column, f"not valid YAML: {_yaml_message(exc)}"))
    except YAMLError as exc:
        out.append(Problem(file, None, None, f"not valid YAML: {excerpt(str(exc)[:400], 120)}"))
    except RecursionError:
        out.append(Problem(file, None, None, f"not valid YAML here: nested more than "
                                             f"{YAML_DEPTH_MAX} levels deep"))
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError, IndexError) as exc:
        # The parser's own failures on odd input (a 5,000-digit number, a date like
        # 2024-02-30, an odd tag): the file is what is wrong, so say so rather than crash.
        out.append(Problem(file, None, None, f"not valid YAML: the YAML reader failed on this "
                                             f"file ({type(exc).__name__}: "
                                             f"{excerpt(str(exc)[:400], 80)})"))
    else:
        parsed.failure = None
        return document
    return None


# ---------------------------------------------------------------------------------------------
# Which files


def _resolved(path: Path) -> Path | _Unreadable:
    """`path` with every symlink resolved, or why that is impossible (a loop, an odd name)."""
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11 on a symlink loop
        return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                         "remove the link")
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            return _Unreadable("it is a symbolic link loop", "is a symbolic link loop; fix or "
                                                             "remove the link")
        reason = (exc.strerror if isinstance(exc, OSError) else None) or "not a valid path"
        return _Unreadable(f"it cannot be read ({reason})", f"cannot read the file ({reason})")


_SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class _Entry:
    """One file to load as a top-level spec."""

    file: str  # as shown in messages
    path: Path  # resolved (or absolute, when it cannot be resolved)
    root: Path | None  # the spec tree `extends` must stay in
    notes: tuple[Problem, ...] = ()  # warnings about how it was found


def _listing(folder: Path) -> list[Path] | Problem:
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        return Problem(str(folder), None, None, f"cannot list the directory "
                                                f"({exc.strerror or exc}); check its permissions")


def _expand(paths: Iterable[str | Path]) -> list[_Entry | Problem]:
    """Files to load as top-level specs, in the order given, and problems with what was given.

    A directory means its *.yaml/*.yml files not starting with `_` (bases) or `.`, sorted. A
    name with the extension in other letter case (`Client.YAML`) is loaded too, with a warning;
    anything else with a spec's name that is no regular file (a broken link, a FIFO, a folder)
    is reported when it is read rather than skipped. A file named twice is loaded once.
    """
    entries: list[_Entry | Problem] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        try:
            is_dir = path.is_dir()
        except (OSError, ValueError):
            is_dir = False
        if is_dir:
            root = _resolved(path)
            listing = _listing(path)
            if isinstance(listing, Problem):
                entries.append(listing)
                continue
            found: list[tuple[Path, tuple[Problem, ...]]] = []
            for p in listing:
                if p.name.startswith(("_", ".")) or p.suffix.lower() not in _SPEC_SUFFIXES:
                    continue
                notes: tuple[Problem, ...] = ()
                if p.suffix not in _SPEC_SUFFIXES:
                    notes = (Problem(str(p), None, None, f"the extension `{p.suffix}` is not "
                                                         f"lowercase; the file is loaded as a "
                                                         f"spec, but rename it to "
                                                         f"`{p.stem}{p.suffix.lower()}`",
                                     severity="warning"),)
                found.append((p, notes))
            if not found:
                entries.append(Problem(str(path), None, None, "no goal spec files (*.yaml or "
                                                              "*.yml, not starting with `_`) "
                                                              "in this directory"))
            files = [(p, notes) for p, notes in found]
        else:
            root = _resolved(path.parent if str(path.parent) else Path("."))
            files = [(path, ())]
        tree = root if isinstance(root, Path) else None
        for p, notes in files:
            resolved = _resolved(p)
            key = resolved if isinstance(resolved, Path) else Path(os.path.abspath(p))
            if key not in seen:
                seen.add(key)
                entries.append(_Entry(str(p), key, tree, notes))
    return entries


def _folders(bases: Iterable[str | Path]) -> tuple[Path, ...]:
    folders = []
    for base in bases:
        resolved = _resolved(Path(base))
        if isinstance(resolved, Path):
            folders.append(resolved)
    return tuple(folders)
