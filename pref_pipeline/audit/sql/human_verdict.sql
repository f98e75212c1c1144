-- Human labels against every single verdict (each judge, each order).
SELECT j.judge_fingerprint, any_value(j.judge_model) AS judge_model,
       count(*) AS n,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL) AS n_decisive,
       count(*) FILTER (WHERE h.human_winner_id IS NOT NULL AND
           h.human_winner_id = CASE j.preferred WHEN 'x' THEN j.candidate_x_id WHEN 'y' THEN j.candidate_y_id END)
           AS n_agree
FROM human_labels h JOIN parsed j ON j.comparison_id = h.comparison_id
GROUP BY j.judge_fingerprint ORDER BY judge_model, j.judge_fingerprint
