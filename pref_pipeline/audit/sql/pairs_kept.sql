-- Pairs in the dataset (stored, not of a batch whose gate failed).
SELECT count(*) AS n_kept FROM kept_pairs
