"""Registers the folder-benchmark specs of the user's folders (``--include-path DIR`` / ``HARNESS_INCLUDE_PATH``).

A plugin of its own, so that a missing folder or a broken spec never costs the built-in tasks their registration.
"""

from harness import hookimpl


@hookimpl
def register_tasks(register):
    """Every ``*.yaml`` spec in the include paths (see :mod:`harness.tasks.folder_spec`)."""
    from harness.tasks.folder_spec import include_paths_from_env, register_specs, spec_files

    register_specs(register, spec_files(include_paths_from_env()))
