"""Hook specifications: the whole contract between the harness and its plugins.

Every hook receives a ``register`` callable (the shape of simonw/llm's hooks). A
registration is a *manifest*: a name, a ``"module:attribute"`` target that is
imported only when the component is used, aliases and a description. Built-in
components register through the very same hooks as third-party packages, which
announce themselves with an entry point in the ``harness`` group::

    [project.entry-points.harness]
    my_plugin = "my_package.plugin"

``register(name, target, *, aliases=(), description="", tags=(), **options)``:

- ``name``: the identifier users type (``harness run --model NAME``).
- ``target``: ``"package.module:Attribute"``; the attribute is a class or factory
  called with the user's ``--model-args`` (models), the manifest's ``options``
  (tasks, metrics) or the trainer's arguments.
- ``aliases``: other names that resolve to the same component.
- ``tags``: free-form labels, e.g. ``("detection",)``; ``--tasks TAG`` selects a tag.
- ``options``: extra keyword arguments stored in the manifest and passed to the
  target when it is instantiated (lets one class serve several task variants).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "harness"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[..., None]


@hookspec
def register_models(register: Register) -> None:
    """Register model adapters (detectors, LMMs, API models).

    The target is a :class:`harness.interfaces.ModelAdapter` subclass, constructed
    with the keyword arguments parsed from ``--model-args``.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register evaluation tasks (benchmarks).

    The target is a :class:`harness.interfaces.Task` subclass, constructed with the
    manifest's ``options`` plus ``data_root`` when the user passes ``--data-root``.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics.

    The target is a :class:`harness.interfaces.Metric` subclass, constructed with
    the manifest's ``options``.
    """


@hookspec
def register_trainers(register: Register) -> None:
    """Register trainers, run by ``harness train NAME``.

    The target is a :class:`harness.interfaces.Trainer` subclass, constructed with ``--args K=V,...``.
    A trainer's own command-line flags are declared at registration, ``flags={"--data": "help", ...}``:
    ``harness train`` offers them (the core names no trainer's options) and passes each one given as the
    keyword argument of its name (``--data X`` -> ``data="X"``).
    """


@hookspec
def register_judges(register: Register) -> None:
    """Register LLM judges (used by judge-based metrics and verdict fallbacks)."""


@hookspec
def register_commands(subparsers: Any) -> None:
    """Add sub-commands to the ``harness`` CLI.

    ``subparsers`` is the :mod:`argparse` sub-parser action. A command sets
    ``parser.set_defaults(func=callable)``; the callable receives the parsed
    ``argparse.Namespace`` and returns an exit code.
    """
