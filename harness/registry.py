"""Lazy registry of manifests: names map to ``"module:attr"`` targets, imported on use.

``harness ls`` reads manifests only, so listing never imports torch or any other
heavy dependency of a component. Unknown names raise :class:`UnknownNameError`
with "did you mean" suggestions (as lm-evaluation-harness does).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.names import is_plain_name

KINDS = ("model", "task", "metric", "trainer", "judge")


class RegistryError(Exception):
    """Base class for registry problems (unknown names, duplicates, bad targets)."""


class UnknownNameError(RegistryError, KeyError):
    """A model, task, metric, trainer or judge name that nothing registered."""

    def __init__(self, kind: str, name: str, suggestions: list[str]):
        self.kind, self.name, self.suggestions = kind, name, suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"Unknown {kind} {name!r}.{hint} (`harness ls {kind}s` lists them.)")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


#: the optional extra of pyproject.toml that installs a package (what to tell a user whose import failed)
EXTRA_OF = {
    "torch": "torch",
    "torchvision": "torch",
    "transformers": "torch",
    "accelerate": "torch",
    "nltk": "text",
    "rouge_score": "text",
    "bert_score": "text",
    "openai": "api",
    "deepspeed": "train",
}


class TargetImportError(RegistryError):
    """A registered target that cannot be imported (missing dependency, typo, bug)."""


@dataclass(frozen=True)
class Manifest:
    """One registered component, described without importing it."""

    kind: str
    name: str
    target: str
    plugin: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    #: where the data or weights come from: paper, repository, hub id, licence, size, layout, what
    #: ``harness data check`` expects (printed by ``data check`` and ``ls --json``)
    sources: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """Import and return the target attribute, with a clear error on failure."""
        module_name, _, attr = self.target.partition(":")
        if not module_name or not attr:
            raise TargetImportError(
                f"{self.kind} {self.name!r} (plugin {self.plugin}) has target {self.target!r}; "
                "expected 'package.module:Attribute'"
            )
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
            missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
            extra = EXTRA_OF.get((missing or "").split(".")[0])
            hint = f"; install it with: pip install 'aigi-harness[{extra}]'" if extra else ""
            raise TargetImportError(
                f"{self.kind} {self.name!r} (plugin {self.plugin}) failed to import {module_name!r}: "
                f"{type(exc).__name__}: {exc}{hint}"
            ) from exc
        try:
            return getattr(module, attr)
        except AttributeError as exc:
            raise TargetImportError(
                f"{self.kind} {self.name!r} (plugin {self.plugin}): module {module_name!r} has no attribute {attr!r}"
            ) from exc

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for ``harness ls --json``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "plugin": self.plugin,
            "aliases": list(self.aliases),
            "description": self.description,
            "tags": list(self.tags),
            "options": self.options,
            "sources": self.sources,
        }


class Registry:
    """Manifests of every kind, keyed by name and alias."""

    def __init__(self) -> None:
        self._manifests: dict[str, dict[str, Manifest]] = {kind: {} for kind in KINDS}
        self._aliases: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        self.warnings: list[str] = []

    def add(self, manifest: Manifest) -> None:
        """Add a manifest; a name taken by an earlier plugin is kept and a warning recorded."""
        table = self._manifests[manifest.kind]
        taken = table.get(manifest.name) or table.get(self._aliases[manifest.kind].get(manifest.name, ""))
        if taken is not None:
            self.warnings.append(
                f"{manifest.kind} {manifest.name!r} from plugin {manifest.plugin} ignored: "
                f"already registered by {taken.plugin}"
            )
            return
        table[manifest.name] = manifest
        for alias in manifest.aliases:
            if alias in table or alias in self._aliases[manifest.kind]:
                self.warnings.append(f"{manifest.kind} alias {alias!r} of {manifest.name!r} ignored: taken")
                continue
            self._aliases[manifest.kind][alias] = manifest.name

    def register_callback(self, kind: str, plugin: str):
        """The ``register`` callable handed to a plugin's hook for one kind."""

        def register(
            name: str,
            target: str,
            *,
            aliases: Iterable[str] = (),
            description: str = "",
            tags: Iterable[str] = (),
            sources: dict[str, Any] | None = None,
            **options: Any,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise RegistryError(f"plugin {plugin} registered a {kind} with an empty name")
            refused = [n for n in (name, *aliases) if not is_plain_name(n)]
            if refused:  # it would become a results folder or a board column: only this name is dropped
                self.warnings.append(
                    f"{kind} {refused[0]!r} from plugin {plugin} ignored: a name may hold letters, digits and "
                    ". _ + - only (no '..', no '/'), since it becomes a results folder"
                )
                return
            self.add(
                Manifest(
                    kind=kind,
                    name=name,
                    target=target,
                    plugin=plugin,
                    aliases=tuple(aliases),
                    description=description,
                    tags=tuple(tags),
                    options=dict(options),
                    sources=dict(sources or {}),
                )
            )

        return register

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._manifests[kind])

    def manifests(self, kind: str) -> list[Manifest]:
        """Registered manifests of one kind, sorted by name."""
        return [self._manifests[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Manifest:
        """The manifest for a name or alias; :class:`UnknownNameError` with suggestions otherwise."""
        table = self._manifests[kind]
        if name in table:
            return table[name]
        if name in self._aliases[kind]:
            return table[self._aliases[kind][name]]
        candidates = list(table) + list(self._aliases[kind])
        close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
        close += [c for c in candidates if name.lower() in c.lower()]
        suggestions: list[str] = []
        for candidate in close:
            canonical = self._aliases[kind].get(candidate, candidate)
            if canonical not in suggestions:
                suggestions.append(canonical)
        raise UnknownNameError(kind, name, suggestions[:3])

    def select_tasks(self, spec: str) -> list[Manifest]:
        """Resolve a ``--tasks`` value: comma-separated names, aliases, tags, globs or ``all``."""
        chosen: dict[str, Manifest] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if part == "all":
                matches = self.manifests("task")
            elif any(ch in part for ch in "*?["):
                matches = [m for m in self.manifests("task") if fnmatch.fnmatch(m.name, part)]
            else:
                tagged = [m for m in self.manifests("task") if part in m.tags]
                matches = tagged or [self.get("task", part)]
            if not matches:
                raise UnknownNameError("task", part, [])
            for manifest in matches:
                chosen.setdefault(manifest.name, manifest)
        return list(chosen.values())


def with_sources(register: Any, table_yaml: str, section: str) -> Any:
    """``register`` that adds each name's entry of a sources table (a plugin's ``sources.yaml``: where the data or
    weights come from) to its manifest, unless the call gives its own."""
    import yaml

    entries = (yaml.load(table_yaml, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get(section) or {}

    def register_with_sources(name: str, target: str, **kwargs: Any) -> None:
        kwargs.setdefault("sources", entries.get(name))
        register(name, target, **kwargs)

    return register_with_sources
