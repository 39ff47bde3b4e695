"""Adapting a cut model to a task: scorers (label words or a classification head), batching, the
optimizer, the training loop, evaluation and metrics."""
