"""Built-in tasks (installed as ``harness.tasks``)."""
