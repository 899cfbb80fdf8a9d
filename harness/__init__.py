"""aigi-harness: a plugin-based evaluation harness for AI-generated-image forensics.

Importing this package is cheap: it pulls in pluggy and the harness's own small modules, nothing heavier.
Model adapters, tasks and metrics are imported only when a run uses them.

From Python, a run is one call (see :func:`harness.evaluate`)::

    import harness

    run = harness.evaluate(model="fredect", model_args={"checkpoint": "checkpoints/fredect"}, tasks="aigi-mini")
    print(run.metrics("aigi-mini")["auc"].value)

Plugin authors find what they need here too::

    from harness import ModelAdapter, Sample, hookimpl

    @hookimpl
    def register_models(register):
        register("my-detector", "my_pkg.detector:MyDetector")
"""

from harness.api import Evaluation, evaluate
from harness.hookspecs import hookimpl
from harness.interfaces import Judge, Metric, MetricContext, ModelAdapter, ModelLoadError, Task, Trainer
from harness.records import GenerationParams, Prediction, Request, Sample, SampleRecord

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "GenerationParams",
    "Judge",
    "Metric",
    "MetricContext",
    "ModelAdapter",
    "ModelLoadError",
    "Prediction",
    "Request",
    "Sample",
    "SampleRecord",
    "Task",
    "Trainer",
    "__version__",
    "evaluate",
    "hookimpl",
]
