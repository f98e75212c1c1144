-- Each named labeller's label of each comparison (the newest when they labelled it twice, e.g. on the sheet and
-- in Label Studio), as x / y / tie: what inter-annotator kappa compares.
SELECT comparison_id, labeller, side
FROM labelled
WHERE named AND comparison_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY comparison_id, labeller ORDER BY labelled_at DESC NULLS LAST, label_id DESC) = 1
ORDER BY comparison_id, labeller
