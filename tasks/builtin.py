"""Registers the built-in tasks. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_tasks(register):
    """aigi-mini, the offline smoke benchmark."""
    register("aigi-mini", "harness.tasks.aigi_mini:AigiMini", aliases=["aigi_mini"], tags=("smoke",),
             description="Simulated smoke benchmark built offline from bundled real photographs "
                         "(3 simulated generators; not a real-world measure).")
