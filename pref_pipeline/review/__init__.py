"""Human review: choose what people label, send it as a CSV sheet or to Label Studio, store the labels.

- ``selection``: which comparisons (``select_items``: awaiting labels, a random or an uncertain sample) and the
  inclusion probabilities that weight the agreement estimate;
- ``sheet``: the blinded CSV sheet and its key (``export_sheet``, ``import_sheet``);
- ``label_studio``: a Label Studio project (``push``, ``pull``) over its REST API;
- ``labels``: ``human_labels`` rows from a person's A / B / tie, reviewers' agreement;
- ``cli``: ``pref-pipeline review export|import|push|pull|known-answer``.

Labels are stored per the issue-21 contract: ``human_winner_id`` is the preferred candidate's id (NULL for a tie),
``comparison_id`` always set, ``label_id = store.label_id(source, comparison_id, labeller)``.
"""

from pref_pipeline.review.cli import add_review_parser, has_tables
from pref_pipeline.review.labels import LABEL_STUDIO_SOURCE, REVIEW_SOURCE, SHOWN, ReviewError, reviewer_agreement
from pref_pipeline.review.selection import (ITEM_COLUMNS, allocate, kept_pairs, reviewable, select_items,
                                            stratified_sample)
from pref_pipeline.audit.stats import weighted_agreement
from pref_pipeline.review.sheet import (KEY_COLUMNS, LABELS, SHEET_COLUMNS, ImportResult, export_review_sheet,
                                        export_sheet, import_review_sheet, import_sheet, key_path, read_sheet)

BLIND_LABELS = SHOWN  # what a reviewer writes on a blinded sheet

__all__ = ["BLIND_LABELS", "ITEM_COLUMNS", "KEY_COLUMNS", "LABELS", "LABEL_STUDIO_SOURCE", "REVIEW_SOURCE",
           "SHEET_COLUMNS", "ImportResult", "ReviewError", "add_review_parser", "allocate", "export_review_sheet",
           "export_sheet", "has_tables", "import_review_sheet", "import_sheet", "kept_pairs", "key_path", "read_sheet",
           "reviewable", "reviewer_agreement", "select_items", "stratified_sample", "weighted_agreement"]
