-- Human labels against the judge's final outcome of the comparison (a kept pair or not).
SELECT h.source, coalesce(h.category, '(unknown)') AS category, h.human_winner_id, h.human_preference,
       c.status, c.winner_id
FROM human_labels h LEFT JOIN comparisons c ON c.comparison_id = h.comparison_id
