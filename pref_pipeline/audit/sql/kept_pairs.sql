-- The pairs that are in the dataset: stored pairs minus those of batches whose gate failed (quarantine rows of
-- stage $gate_stage: pref_pipeline.quarantine.PAIRS_GATE_STAGE), with their word counts
-- (pref_pipeline.metrics.word_count: stored by the pipeline, or counted when the relation is set up), without
-- the texts. judge_labelled: a judge's verdict stands behind the label (pref_pipeline.metrics.judge_labelled:
-- label_source contains 'judge'; a pair without one is from before the column, when every pair was judged).
CREATE OR REPLACE TEMP TABLE kept_pairs AS
SELECT p.pair_id, p.category, p.judge_model_id, p.chosen_strategy, p.rejected_strategy, p.chosen_generator,
       p.rejected_generator, p.chosen_candidate_id, p.rejected_candidate_id, p.chosen_words, p.rejected_words,
       p.label_source, coalesce(p.label_source, 'judge') LIKE '%judge%' AS judge_labelled
FROM pairs p ANTI JOIN (
    SELECT item_id FROM quarantine WHERE stage = $gate_stage AND item_id IS NOT NULL) g
ON g.item_id = p.pair_id
