-- Rows of the pairs gate that stand for a whole blocked batch rather than for a pair (the gate failed only on
-- table-level expectations, e.g. no pair at all): counted in pairs.quarantined, so said apart.
SELECT count(*) FROM quarantine
WHERE stage = $gate_stage AND (item_id IS NOT DISTINCT FROM batch_id OR item_id = 'preference_pairs')
