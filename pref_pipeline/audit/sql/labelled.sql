-- Every human label with the comparison it labels and what the machine (judges or construction) decided before
-- people: the pairs step keeps that in machine_status / machine_winner_id / machine_label_source
-- (pref_pipeline/human_pairs.py); a comparison stored without them (before people labelled it, or from before
-- the columns) was decided by the machine alone, so its own status, winner and label_source are the machine's.
-- labeller: named by the source, in parentheses, when the label has none. side: the label as a judge would
-- write it (x, y, tie), or its human_preference when the comparison is unknown.
CREATE OR REPLACE TEMP VIEW labelled AS
WITH joined AS (
    SELECT h.*, c.comparison_id IS NOT NULL AS known, c.candidate_x_id, c.candidate_y_id,
           coalesce(c.strategy, '(unknown)') AS strategy, c.machine_status IS NOT NULL AS settled_by_people,
           CASE WHEN c.machine_status IS NULL THEN c.status ELSE c.machine_status END AS m_status,
           CASE WHEN c.machine_status IS NULL THEN c.winner_id ELSE c.machine_winner_id END AS m_winner,
           CASE WHEN c.machine_status IS NULL THEN c.label_source ELSE c.machine_label_source END AS m_source
    FROM human_labels h LEFT JOIN comparisons c ON c.comparison_id = h.comparison_id
)
SELECT label_id, source, comparison_id, coalesce(category, '(unknown)') AS category,
       coalesce(labeller, '(' || coalesce(source, 'unknown source') || ')') AS labeller, labeller IS NOT NULL AS named,
       labelled_at, human_winner_id, human_preference, inclusion_probability, known, strategy, m_status AS machine_status,
       m_winner AS machine_winner_id,
       CASE WHEN m_winner IS NULL THEN NULL ELSE coalesce(m_source, 'judge') END AS machine_label_source,
       CASE WHEN human_winner_id IS NULL THEN 'tie' WHEN human_winner_id = candidate_x_id THEN 'x'
            WHEN human_winner_id = candidate_y_id THEN 'y' ELSE coalesce(human_preference, '?') END AS side
FROM joined
