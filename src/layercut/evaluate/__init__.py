"""Evaluate a cut model the way the field does: lm-evaluation-harness tasks, perplexity, and
agreement with the full model.

    from layercut import load_model
    from layercut.evaluate import EvaluationRequest, evaluate_loaded
    request = EvaluationRequest(lm_eval=("layercut_trec",), limit=100, perplexity="trec").checked()
    record = evaluate_loaded(load_model("smollm2-135m", "first:4"), request)
"""

from layercut.evaluate.request import EvaluationRequest, evaluate_loaded, format_record

__all__ = ["EvaluationRequest", "evaluate_loaded", "format_record"]
