"""Registers the built-in metrics. Imports nothing heavy: targets load on use."""

from harness import hookimpl

_M = "harness.plugins.detection_metrics"


@hookimpl
def register_metrics(register):
    """Detection metrics (scikit-learn), from scores and from parsed verdicts."""
    register("acc", f"{_M}:Accuracy", description="Accuracy of P(fake) > 0.5 (fake is positive).")
    register("ap", f"{_M}:AveragePrecision", description="Average precision, fake as positive (sklearn).")
    register("auc", f"{_M}:RocAuc", aliases=["roc_auc"], description="Area under the ROC curve (sklearn).")
    register("real_acc", f"{_M}:RealAccuracy", description="Accuracy on real images at 0.5 (upstream r_acc).")
    register("fake_acc", f"{_M}:FakeAccuracy", description="Accuracy on fake images at 0.5 (upstream f_acc).")
    register("balanced_acc", f"{_M}:BalancedAccuracy", description="Mean of real and fake accuracy at 0.5.")
    register("eer", f"{_M}:EqualErrorRate", description="Equal error rate from the ROC curve (lower is better).")
    register("acc_val_threshold", f"{_M}:ValidationThresholdAccuracy",
             description="Accuracy at the threshold that maximises accuracy on the task's validation split.")
    register("acc_curve", f"{_M}:AccuracyCurve",
             description="Accuracy / real / fake accuracy versus threshold (paper Fig. 7), as data.")
    register("qual_acc", f"{_M}:VerdictAccuracy",
             description="Accuracy of verdicts parsed from generated text; unknown verdicts count as wrong.")
    register("unknown_rate", f"{_M}:UnknownRate",
             description="Share of generated answers whose verdict could not be parsed.")
