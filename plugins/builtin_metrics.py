"""Registers the built-in metrics. Imports nothing heavy: targets load on use."""

from harness import hookimpl

_M = "harness.plugins.detection_metrics"
_T = "harness.plugins.text_metrics"
_J = "harness.plugins.judge_metrics"


@hookimpl
def register_metrics(register):
    """Detection metrics (scikit-learn), verdict metrics, text similarity and LLM-as-judge metrics."""
    register("acc", f"{_M}:Accuracy", description="Accuracy of P(fake) > 0.5 (fake is positive).")
    register("ap", f"{_M}:AveragePrecision", description="Average precision, fake as positive (sklearn).")
    register("auc", f"{_M}:RocAuc", aliases=["roc_auc"], description="Area under the ROC curve (sklearn).")
    register("real_acc", f"{_M}:RealAccuracy", description="Accuracy on real images at 0.5 (upstream r_acc).")
    register("fake_acc", f"{_M}:FakeAccuracy", description="Accuracy on fake images at 0.5 (upstream f_acc).")
    register("balanced_acc", f"{_M}:BalancedAccuracy", description="Mean of real and fake accuracy at 0.5.")
    register("eer", f"{_M}:EqualErrorRate", description="Equal error rate from the ROC curve (lower is better).")
    register(
        "acc_val_threshold",
        f"{_M}:ValidationThresholdAccuracy",
        description="Accuracy at the threshold that maximises accuracy on the task's validation split.",
    )
    register(
        "acc_oracle_univfd",
        f"{_M}:UnivFDOracleAccuracy",
        description="UnivFD's published oracle accuracy: threshold searched on the evaluated labels "
        "(optimistic; off by default, --extra-metrics).",
    )
    register(
        "acc_curve",
        f"{_M}:AccuracyCurve",
        description="Accuracy / real / fake accuracy versus threshold (paper Fig. 7), as data.",
    )
    register(
        "qual_acc",
        f"{_M}:VerdictAccuracy",
        description="Accuracy of verdicts parsed from generated text; unknown verdicts count as wrong.",
    )
    register(
        "unknown_rate", f"{_M}:UnknownRate", description="Share of generated answers whose verdict could not be parsed."
    )
    # text similarity and LLM-as-judge (paper Table IV)
    register("bleu1", f"{_T}:Bleu1", description="Sentence BLEU-1 (nltk, Treebank tokens, smoothing method1).")
    register("bleu2", f"{_T}:Bleu2", description="Sentence BLEU-2 (nltk, Treebank tokens, smoothing method1).")
    register("rouge_l", f"{_T}:RougeL", description="ROUGE-L F-measure (rouge-score, Porter stemming).")
    register(
        "bertscore",
        f"{_T}:BertScore",
        description="BERTScore F1 (bert-score); offline default backbone: packaged all-MiniLM-L6-v2.",
    )
    register("judge_completeness", f"{_J}:Completeness", description="LLM judge: completeness alpha (0-2).")
    register("judge_preciseness", f"{_J}:Preciseness", description="LLM judge: preciseness rho (0-2).")
    register("judge_relevance", f"{_J}:Relevance", description="LLM judge: relevance kappa (0-2).")
    register(
        "avr",
        f"{_J}:TransparencyAverage",
        description="Paper's Avr. as its text defines it: mean of the 7 normalised measures (judge / 2); "
        "matches the published FakeScope rows.",
    )
    register(
        "avr_halves",
        f"{_J}:TransparencyAverageHalves",
        description="1/2 word-level mean + 1/2 mean of judge scores / 2: the formula of the paper's "
        "published baseline rows.",
    )


@hookimpl
def register_judges(register):
    """LLM judges for the judge metrics and verdict fallbacks."""
    register(
        "openai",
        "harness.plugins.judges:OpenAICompatibleJudge",
        aliases=["openai-compatible"],
        description="Any OpenAI-compatible chat endpoint (HARNESS_JUDGE_MODEL, HARNESS_JUDGE_BASE_URL, "
        "HARNESS_JUDGE_API_KEY); temperature 0.",
    )
    register(
        "transformers",
        "harness.plugins.judges:TransformersJudge",
        description="A local causal LM (judge_args path=DIR); greedy decoding.",
    )
