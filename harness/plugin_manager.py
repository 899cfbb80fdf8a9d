"""The typed facade over pluggy (tox's pattern): load plugins, isolate failures, build the registry.

Built-in components are plugins too (``BUILTIN_PLUGINS``), registered through
the same hooks as third-party packages found through the ``harness`` entry-point
group. A plugin that fails to import, or whose hook raises, is recorded in
:attr:`HarnessPlugins.infos` with its error and skipped; everything else works.

Environment variables:

- ``HARNESS_LOAD_PLUGINS``: comma-separated allow-list of external plugins (entry
  point or distribution names); set but empty loads no external plugin at all.
- ``HARNESS_DISABLE_PLUGINS``: comma-separated block-list; ``*`` blocks every
  external plugin. Built-ins are never blocked.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pluggy

from harness import hookspecs
from harness.registry import Manifest, Registry

BUILTIN_PLUGINS = (
    "harness.plugins.builtin_models",
    "harness.plugins.builtin_metrics",
    "harness.plugins.builtin_commands",
    "harness.tasks.builtin",
    "harness.tasks.included",
    "harness.trainers.builtin",
)

ENTRY_POINT_GROUP = "harness"

_REGISTER_HOOKS = {
    "register_models": "model",
    "register_tasks": "task",
    "register_metrics": "metric",
    "register_trainers": "trainer",
    "register_judges": "judge",
}


@dataclass
class PluginInfo:
    """What ``harness plugins`` shows for one plugin."""

    name: str
    version: str | None
    builtin: bool
    module: str
    hooks: list[str] = field(default_factory=list)
    #: the plugin could not be imported: nothing of it is used
    error: str | None = None
    blocked: bool = False
    #: hooks that raised: what they registered is dropped; the plugin's other hooks work
    failed_hooks: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (also stored in results provenance)."""
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "module": self.module,
            "hooks": self.hooks,
            "error": self.error,
            "blocked": self.blocked,
            "failed_hooks": self.failed_hooks,
        }

    def problem(self) -> str | None:
        """One line saying exactly what of this plugin is not used, or ``None``."""
        if self.error:
            return f"plugin {self.name} failed to load and is skipped: {self.error}"
        if self.failed_hooks:
            working = [h for h in self.hooks if h not in self.failed_hooks]
            failed = "; ".join(f"{hook} raised {message}" for hook, message in self.failed_hooks.items())
            return (
                f"plugin {self.name}: {failed} (what that hook registered is skipped"
                + (f"; its {', '.join(working)} work" if working else "")
                + ")"
            )
        return None


def _split_env(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class HarnessPlugins:
    """Loads every plugin and exposes the registry and per-plugin status."""

    def __init__(self, load_entrypoints: bool = True, extra_plugins: tuple[Any, ...] = ()):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        for module_name in BUILTIN_PLUGINS:
            self._register_module(module_name, builtin=True, version=_harness_version())
        if load_entrypoints:
            self._load_entrypoints()
        for plugin in extra_plugins:
            name = getattr(plugin, "__name__", repr(plugin))
            self.pm.register(plugin, name=name)
            self.infos.append(
                PluginInfo(name=name, version=None, builtin=False, module=name, hooks=self._hooks_of(plugin))
            )
        self.registry = Registry()
        self._collect()

    # -- loading -----------------------------------------------------------------------------
    def _register_module(self, module_name: str, builtin: bool, version: str | None, name: str | None = None) -> None:
        info = PluginInfo(name=name or module_name, version=version, builtin=builtin, module=module_name)
        self.infos.append(info)
        try:
            module = importlib.import_module(module_name)
            self.pm.register(module, name=info.name)
            info.hooks = self._hooks_of(module)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the harness
            info.error = f"{type(exc).__name__}: {exc}"

    def _load_entrypoints(self) -> None:
        allow = _split_env("HARNESS_LOAD_PLUGINS")
        block = _split_env("HARNESS_DISABLE_PLUGINS") or set()
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else None
            names = {ep.name, dist_name} - {None}
            if "*" in block or names & block or (allow is not None and not names & allow):
                self.infos.append(
                    PluginInfo(name=ep.name, version=version, builtin=False, module=ep.value, blocked=True)
                )
                continue
            if self.pm.has_plugin(ep.name):
                continue
            info = PluginInfo(name=ep.name, version=version, builtin=False, module=ep.value)
            self.infos.append(info)
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
                info.hooks = self._hooks_of(plugin)
            except Exception as exc:  # noqa: BLE001
                info.error = f"{type(exc).__name__}: {exc}"
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            for info in self.infos:
                if info.name in str(exc) and info.error is None:
                    info.error = f"PluginValidationError: {exc}"

    def _hooks_of(self, plugin: Any) -> list[str]:
        return sorted(impl.name for impl in (self.pm.get_hookcallers(plugin) or []))

    # -- registration ------------------------------------------------------------------------
    def _collect(self) -> None:
        """Call every plugin's register hooks one plugin at a time, so one failure stays local."""
        by_name = {info.name: info for info in self.infos}
        for hook_name, kind in _REGISTER_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in reversed(caller.get_hookimpls()):  # registration order
                info = by_name.get(impl.plugin_name)
                if info is not None and info.error:
                    continue
                staged = Registry()
                try:
                    impl.function(register=staged.register_callback(kind, impl.plugin_name))
                except Exception as exc:  # noqa: BLE001 - only this hook's registrations are dropped
                    if info is not None:
                        info.failed_hooks[hook_name] = f"{type(exc).__name__}: {exc}"
                    continue
                for manifest in staged.manifests(kind):
                    self.registry.add(manifest)
                self.registry.warnings.extend(staged.warnings)  # names the staged registry refused

    def add_cli_commands(self, subparsers: Any) -> None:
        """Let each plugin add sub-commands; a failing plugin is recorded, not fatal."""
        by_name = {info.name: info for info in self.infos}
        for impl in reversed(self.pm.hook.register_commands.get_hookimpls()):
            try:
                impl.function(subparsers=subparsers)
            except Exception as exc:  # noqa: BLE001
                info = by_name.get(impl.plugin_name)
                if info is not None:
                    info.failed_hooks["register_commands"] = f"{type(exc).__name__}: {exc}"

    # -- queries -----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Manifest:
        """Manifest for ``name`` (or an alias); raises with suggestions when unknown."""
        return self.registry.get(kind, name)

    def failed(self) -> list[PluginInfo]:
        """Plugins that failed to load, or one of whose hooks raised."""
        return [info for info in self.infos if info.error or info.failed_hooks]

    def blocked(self) -> list[PluginInfo]:
        """Installed plugins left out by ``HARNESS_LOAD_PLUGINS`` / ``HARNESS_DISABLE_PLUGINS``."""
        return [info for info in self.infos if info.blocked]

    def versions(self) -> dict[str, str | None]:
        """Plugin name -> version of every plugin whose code ran (a plugin with a failed hook included), for
        results provenance."""
        return {info.name: info.version for info in self.infos if not info.blocked and not info.error}


def _harness_version() -> str:
    from harness import __version__

    return __version__


@lru_cache(maxsize=1)
def get_plugins() -> HarnessPlugins:
    """The process-wide plugin set (built once; tests build their own :class:`HarnessPlugins`)."""
    return HarnessPlugins()
