"""Evaluation of the pipeline's outputs against ground truth.

- :mod:`seqvpr.evaluation.vpr`: sequence localization on reference/query pairs
  (:func:`evaluate`, the ``seqvpr evaluate`` step).
- :mod:`seqvpr.evaluation.tables`: per-sequence results and accuracy tables.
- :mod:`seqvpr.evaluation.plots`: error CDFs and example maps (matplotlib, imported when used).
"""

from seqvpr.evaluation.tables import SequenceResult, accuracy_rows, markdown_table, method_label, write_results
from seqvpr.evaluation.vpr import EvaluationConfig, evaluate, load_models, localize_pairs

__all__ = [
    "EvaluationConfig",
    "evaluate",
    "load_models",
    "localize_pairs",
    "SequenceResult",
    "accuracy_rows",
    "markdown_table",
    "method_label",
    "write_results",
]
