-- One row per judge-labelled kept pair (a construction pair's winner and lengths follow from how it was made, so
-- it tells nothing of the judge, and would let the generator separate the outcomes), oriented so that side "a"
-- is the candidate with the smaller id: a_won is then not constant, which a logistic model needs; the model is
-- antisymmetric, so the orientation does not matter.
SELECT CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN 1 ELSE 0 END AS a_won,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN chosen_words - rejected_words
            ELSE rejected_words - chosen_words END AS diff,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN coalesce(chosen_generator, '?')
            ELSE coalesce(rejected_generator, '?') END AS a_gen,
       CASE WHEN chosen_candidate_id <= rejected_candidate_id THEN coalesce(rejected_generator, '?')
            ELSE coalesce(chosen_generator, '?') END AS b_gen
FROM kept_pairs
WHERE judge_labelled AND chosen_candidate_id IS NOT NULL AND rejected_candidate_id IS NOT NULL
