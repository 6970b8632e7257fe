"""The generic registry: a read-only mapping of names to items, filled by decorators beside the definitions, at
run time with :meth:`Registry.add`, or lazily from the entry points of installed packages."""

from __future__ import annotations

import difflib
import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Item = TypeVar("Item")

_MISSING: Any = object()


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type name), so errors stay one line."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


class Registry(Mapping[str, T], Generic[T]):
    """Names -> items of one ``kind``, in registration order; aliases and plug-ins resolve through :meth:`get`.

    As a mapping it holds only the registered names (not aliases, not plug-ins not yet loaded), so ``name in``,
    ``[name]`` and iteration behave like the dicts they replace. ``entry_point_group``: installed packages add items
    by declaring entry points in this group; each is imported on first use, never by listing.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        check: Callable[[Any], T] | None = None,
        load: Callable[[Any], T] | None = None,
        load_error: type[Exception] = ValueError,
    ) -> None:
        """``check`` validates (and returns) every item before it is registered; ``load`` turns what an entry point
        names into an item (default: the object itself, then ``check``); a plug-in that fails to load raises
        ``load_error`` with one line."""
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._check = check
        self._load = load
        self._load_error = load_error
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    # --- the mapping --------------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._items)})"

    # --- registration -------------------------------------------------------------------------------------------

    def add(self, name: str, item: T, *, aliases: Iterable[str] = (), overwrite: bool = False) -> T:
        """Register ``item`` as ``name`` (and ``aliases``) and return it; a name taken by another item is refused
        unless ``overwrite`` (registering the same item again is a no-op)."""
        aliases = tuple(aliases)
        for key in (name, *aliases):
            taken = self._items.get(key, self._items.get(self._aliases.get(key, ""), _MISSING))
            if taken is not _MISSING and taken is not item and not overwrite:
                raise ValueError(
                    f"a {self.kind} named {key!r} is already registered ({_describe(taken)}); "
                    "pass overwrite=True to replace it"
                )
        if self._check is not None:
            item = self._check(item)
        self._items[name] = item
        self._aliases.pop(name, None)
        for alias in aliases:
            if alias != name:
                self._aliases[alias] = name
        return item

    def register(self, name: str, *, aliases: Iterable[str] = (), overwrite: bool = False) -> Callable[[Item], Item]:
        """A decorator that registers the class or function beneath it as ``name`` and returns it unchanged."""

        def decorator(item: Item) -> Item:
            self.add(name, item, aliases=aliases, overwrite=overwrite)  # type: ignore[arg-type]
            return item

        return decorator

    def remove(self, name: str) -> T:
        """Unregister ``name`` (and its aliases) and return its item."""
        item = self._items.pop(name)
        self._aliases = {alias: target for alias, target in self._aliases.items() if target != name}
        return item

    def filtered(self, keep: Callable[[str, T], bool]) -> Registry[T]:
        """A new registry of the same kind with the items ``keep(name, item)`` accepts, in the same order (e.g. for
        a test that unregisters some items for its duration)."""
        other: Registry[T] = Registry(
            self.kind, self.entry_point_group, check=self._check, load=self._load, load_error=self._load_error
        )
        other._items = {name: item for name, item in self._items.items() if keep(name, item)}
        other._aliases = {alias: name for alias, name in self._aliases.items() if name in other._items}
        return other

    def copy(self) -> Registry[T]:
        """A new registry with the same items (e.g. for a test that registers items only for its duration)."""
        return self.filtered(lambda name, item: True)

    # --- look-up ------------------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every name: the registered ones in registration order, then installed plug-ins' (not imported)."""
        return [*self._items, *(name for name in self._entry_points() if name not in self._items)]

    def find(self, name: str) -> T | None:
        """The item registered as ``name`` or one of its aliases, else an installed plug-in's (imported now and
        registered), else None."""
        if name in self._items:
            return self._items[name]
        if name in self._aliases:
            return self._items[self._aliases[name]]
        entry_point = self._entry_points().get(name)
        return None if entry_point is None else self._load_entry_point(entry_point)

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The item called ``name`` (see :meth:`find`); an unknown name raises a one-line ``ValueError`` with the
        closest valid name and all of them (or returns ``default`` when one is given)."""
        found = self.find(name)
        if found is not None:
            return found
        if default is not _MISSING:
            return default
        raise ValueError(self.unknown(name))

    def unknown(self, name: str, *, also: Iterable[str] = (), valid: Iterable[str] | None = None) -> str:
        """The one-line message for an unknown ``name``: the closest of the valid names, aliases and ``also``, then
        the valid names (``valid``, default: :meth:`names`, in registration order)."""
        listed = self.names() if valid is None else list(valid)
        candidates = [*self.names(), *self._aliases, *also]
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        return f"unknown {self.kind} {name!r}{hint} valid names: {', '.join(listed)}"

    # --- plug-ins -----------------------------------------------------------------------------------------------

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self.entry_point_group is None:
            return {}
        found = importlib.metadata.entry_points(group=self.entry_point_group)
        return {entry_point.name: entry_point for entry_point in found}

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> T:
        try:
            loaded = entry_point.load()
            item = self._load(loaded) if self._load is not None else loaded
            item = self.add(entry_point.name, item)
        except Exception as exc:
            raise self._load_error(
                f"{self.kind} {entry_point.name!r} from entry point {entry_point.value!r} failed to load "
                f"({type(exc).__name__}: {first_line(exc)})"
            ) from exc
        return item


def _describe(item: object) -> str:
    return getattr(item, "__name__", None) or getattr(item, "name", None) or type(item).__name__
