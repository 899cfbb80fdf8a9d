"""The plugin module named by the entry point: hook implementations only, no heavy imports."""

from harness import hookimpl


@hookimpl
def register_models(register):
    """Register the example detector lazily (its module is imported only when used)."""
    register(
        "example-highpass",
        "harness_example_detector.detector:HighPassDetector",
        aliases=["example-detector"],
        tags=("detector", "example"),
        description="Example third-party plugin: P(fake) from missing high-frequency energy.",
    )
