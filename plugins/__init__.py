"""Built-in plugins (installed as ``harness.plugins``): model adapters and metrics."""
