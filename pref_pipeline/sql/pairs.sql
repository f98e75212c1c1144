-- From verdicts to pairs, set-based (pref_pipeline/pairs.py runs this).
-- Inputs (typed views): judgments (with _row, its position in the frame), candidates, prompts.
-- Outputs: temp tables comparisons_out (every comparison with its status) and pairs_out (the kept pairs),
-- both with first_row, the position of the comparison's first verdict, to keep the input order.
-- generation_method is set by pairs.py.

-- The panel's decision per comparison (status, preferred, votes, agreement, confidence) is panel_out,
-- made by sql/panel.sql (pref_pipeline/judging/panel.py) in the same connection just before.

-- Per comparison: its first verdict's position and candidates, the judges, and the panel's decision.
CREATE OR REPLACE TEMP TABLE comparisons_out AS
WITH firsts AS (
    SELECT comparison_id,
           min(_row) AS first_row,
           first(prompt_id ORDER BY _row) AS prompt_id,
           first(candidate_x_id ORDER BY _row) AS candidate_x_id,
           first(candidate_y_id ORDER BY _row) AS candidate_y_id,
           array_to_string(list_sort(list_distinct(list(judge_model))), '+') AS judge_models,
           array_to_string(list_sort(list_distinct(list(judge_fingerprint))), '+') AS judge_fingerprints
    FROM judgments
    WHERE comparison_id IS NOT NULL
    GROUP BY comparison_id
),
statuses AS (
    SELECT f.*, coalesce(v.status, 'error') AS status, v.preferred, v.aggregation, v.votes, v.vote, v.agreement,
           v.confidence
    FROM firsts f LEFT JOIN panel_out v USING (comparison_id)
)
SELECT comparison_id, prompt_id, candidate_x_id, candidate_y_id, status,
       CASE WHEN status = 'consistent' THEN
           CASE preferred WHEN 'x' THEN candidate_x_id WHEN 'y' THEN candidate_y_id END END AS winner_id,
       judge_models, judge_fingerprints, aggregation, votes, vote, agreement, confidence, first_row
FROM statuses;

-- The kept pairs: every consistent comparison with a winner, with the texts and who made them.
-- judgment: the first reasoning of a verdict for the winner (the seed's field; reasoning is the first of any verdict).
-- critique: the critique of the loser the winner answers: in the winner's notes, or in those of a candidate made
-- from the loser (critique_revise keeps it in the revision's notes, whose parent is the original).
CREATE OR REPLACE TEMP TABLE pairs_out AS
WITH kept AS (
    SELECT *, CASE WHEN winner_id = candidate_x_id THEN candidate_y_id ELSE candidate_x_id END AS loser_id,
           CASE WHEN winner_id = candidate_x_id THEN 'x' ELSE 'y' END AS winner_side
    FROM comparisons_out
    WHERE winner_id IS NOT NULL
),
critiques AS (
    SELECT parent_id, first(json_extract_string(notes, '$.critique') ORDER BY candidate_id) AS critique
    FROM candidates
    WHERE parent_id IS NOT NULL AND json_extract_string(notes, '$.critique') IS NOT NULL
    GROUP BY parent_id
),
verdicts AS (
    SELECT j.comparison_id,
           coalesce(string_agg(j.preference, '|' ORDER BY j.judge_fingerprint NULLS LAST, j._row)
                    FILTER (WHERE j."order" = 'xy'), '') AS verdict_ab,
           coalesce(string_agg(j.preference, '|' ORDER BY j.judge_fingerprint NULLS LAST, j._row)
                    FILTER (WHERE j."order" = 'yx'), '') AS verdict_ba,
           coalesce(first(j.reasoning ORDER BY j.judge_fingerprint NULLS LAST, j."order" NULLS LAST, j._row)
                    FILTER (WHERE j.reasoning <> ''), '') AS reasoning,
           coalesce(first(j.reasoning ORDER BY j.judge_fingerprint NULLS LAST, j."order" NULLS LAST, j._row)
                    FILTER (WHERE j.reasoning <> '' AND j.preferred = k.winner_side), '') AS judgment,
           list_sort(list_distinct(list(j.judge_model))) AS judges,
           array_to_string(list_sort(list_distinct(list(j.criteria))), '+') AS criteria,
           max(j.judged_at) AS judged_at
    FROM judgments j JOIN kept k ON j.comparison_id = k.comparison_id
    GROUP BY j.comparison_id
)
SELECT 'pair-' || CASE WHEN starts_with(k.comparison_id, 'cmp-') THEN substr(k.comparison_id, 5)
                       ELSE k.comparison_id END AS pair_id,
       k.prompt_id,
       p.prompt,
       ch.text AS chosen,
       rj.text AS rejected,
       array_to_string(list_transform(v.judges, lambda m: substr(m, strpos(m, ':') + 1)), '+') AS judge_model_id,
       v.criteria,
       p.category,
       k.confidence,
       v.verdict_ab,
       v.verdict_ba,
       v.reasoning,
       k.judge_fingerprints AS judge_fingerprint,
       k.winner_id AS chosen_candidate_id,
       k.loser_id AS rejected_candidate_id,
       ch.generator_model AS chosen_model,
       rj.generator_model AS rejected_model,
       ch.generator_label AS chosen_generator,
       rj.generator_label AS rejected_generator,
       ch.sampling AS chosen_sampling,
       rj.sampling AS rejected_sampling,
       ch.strategy AS chosen_strategy,
       rj.strategy AS rejected_strategy,
       v.judged_at,
       greatest(ch.created_at, rj.created_at) AS generated_at,
       v.judgment,
       coalesce(json_extract_string(ch.notes, '$.critique'), cr.critique) AS critique,
       k.first_row
FROM kept k
JOIN verdicts v USING (comparison_id)
LEFT JOIN prompts p ON p.prompt_id = k.prompt_id
LEFT JOIN candidates ch ON ch.candidate_id = k.winner_id
LEFT JOIN candidates rj ON rj.candidate_id = k.loser_id
LEFT JOIN critiques cr ON cr.parent_id = k.loser_id;
