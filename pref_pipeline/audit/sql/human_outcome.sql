-- Human labels against the machine's decision before people (the pair that was exported, by the judges or by
-- construction; the labelled view): one row per label.
SELECT source, category, strategy, coalesce(machine_label_source, '(no pair)') AS label_source, labeller,
       comparison_id, human_winner_id, human_preference, machine_status, machine_winner_id
FROM labelled
