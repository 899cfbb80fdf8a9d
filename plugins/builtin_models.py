"""Registers the built-in model adapters. Imports nothing heavy: targets load on use."""

from harness import hookimpl


@hookimpl
def register_models(register):
    """Detectors that run without torch."""
    register("fredect", "harness.plugins.fredect:FreDect", aliases=["fredect-dct"], tags=("detector",),
             description="FreDect (Frank et al. 2020): log-DCT + standardisation + logistic regression. "
                         "Needs checkpoint=DIR from `harness train fredect`.")
    register("format-shortcut", "harness.plugins.format_shortcut:FormatShortcut", tags=("audit",),
             description="Auditor that sees only file format, size, mode and JPEG quality; "
                         "above chance means the benchmark leaks labels through storage.")
    register("noop", "harness.testing:NoopModel", tags=("testing",),
             description="Pseudo-scores from the sample id, no pixels read: for testing tasks and timing "
                         "the harness itself.")
