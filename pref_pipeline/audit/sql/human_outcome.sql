-- Human labels against the machine's decision before people (the pair that was exported, by the judges or by
-- construction; the labelled view): one row per label, with the probability it had of being chosen for review
-- (1 when it was not sampled: every waiting comparison, or a label from before the column).
SELECT source, category, strategy, coalesce(machine_label_source, '(no pair)') AS label_source, labeller,
       comparison_id, human_winner_id, human_preference, machine_status, machine_winner_id,
       coalesce(inclusion_probability, 1.0) AS inclusion_probability
FROM labelled
