"""Evaluation: load a trained checkpoint, predict on held-out shards, compute the metrics of
:mod:`munet.metrics` from predictions alone, and write a report (JSON, Markdown, pictures)."""

from munet.eval.evaluate import evaluate

__all__ = ["evaluate"]
