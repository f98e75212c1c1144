-- Contingency tables for Cohen's kappa of each judge version against the human labels, per verdict:
-- the human label as the judge would write it (x, y, tie; '?' when it names neither candidate).
SELECT j.judge_fingerprint,
       CASE WHEN h.human_winner_id IS NULL THEN 'tie' WHEN h.human_winner_id = j.candidate_x_id THEN 'x'
            WHEN h.human_winner_id = j.candidate_y_id THEN 'y' ELSE '?' END AS human_label,
       j.preferred AS judge_label, count(*) AS n
FROM human_labels h JOIN parsed j ON j.comparison_id = h.comparison_id
GROUP BY ALL ORDER BY ALL
