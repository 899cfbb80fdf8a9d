"""aigi-harness: a plugin-based evaluation harness for AI-generated-image forensics.

Importing this package is cheap: it pulls in pluggy and nothing heavier. Model
adapters, tasks and metrics are imported only when a command uses them.

Plugin authors need only ``hookimpl``::

    from harness import hookimpl

    @hookimpl
    def register_models(register):
        register("my-detector", "my_pkg.detector:MyDetector")
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["hookimpl", "__version__"]
