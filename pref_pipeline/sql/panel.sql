-- The panel: from every judge's verdicts in both orders to one decision per comparison
-- (pref_pipeline/judging/panel.py runs this before sql/pairs.sql).
-- Inputs: judgments (typed, with _row), panel_weights (judge_fingerprint, weight), panel_rule (aggregation).
-- Output: temp table panel_out (comparison_id, status, preferred, aggregation, votes, vote, agreement, confidence).

-- Per (comparison, judge): an error if any call failed or the judge has not exactly two rows; a rule that
-- does not apply abstains; else what each order preferred (null when it never parsed).
CREATE OR REPLACE TEMP TABLE panel_members AS
WITH orders AS (
    SELECT comparison_id,
           judge_fingerprint,
           first(judge_model ORDER BY _row) AS judge_model,
           first(judge_type ORDER BY _row) AS judge_type,
           bool_or(error IS NOT NULL) OR count(*) <> 2 AS failed,
           bool_and(parse_status = 'not_applicable') AS not_applicable,
           max(verdict) FILTER (WHERE "order" = 'xy') AS xy,
           max(verdict) FILTER (WHERE "order" = 'yx') AS yx,
           avg(coalesce(label_probability, confidence)) AS verdict_confidence
    FROM (SELECT *, CASE WHEN parse_status IS DISTINCT FROM 'unparseable' THEN preferred END AS verdict FROM judgments)
    WHERE comparison_id IS NOT NULL AND judge_fingerprint IS NOT NULL
    GROUP BY comparison_id, judge_fingerprint
),
statuses AS (
    SELECT o.*,
           CASE WHEN failed THEN 'error'
                WHEN not_applicable THEN 'abstain'
                WHEN xy IS NULL OR yx IS NULL THEN 'unparseable'
                WHEN xy = 'tie' AND yx = 'tie' THEN 'tie'
                WHEN xy = yx THEN 'consistent'
                ELSE 'inconsistent' END AS status,
           CASE WHEN (SELECT aggregation FROM panel_rule) = 'weighted'
                THEN coalesce(w.weight, 1.0) ELSE 1.0 END AS weight
    FROM orders o LEFT JOIN panel_weights w USING (judge_fingerprint)
)
SELECT *, CASE status WHEN 'consistent' THEN xy WHEN 'tie' THEN 'tie' END AS vote FROM statuses;

CREATE OR REPLACE TEMP TABLE panel_out AS
WITH tally AS (
    SELECT comparison_id,
           coalesce(sum(weight) FILTER (WHERE vote = 'x'), 0) AS wx,
           coalesce(sum(weight) FILTER (WHERE vote = 'y'), 0) AS wy,
           coalesce(sum(weight) FILTER (WHERE vote = 'tie'), 0) AS wtie,
           coalesce(sum(weight) FILTER (WHERE status <> 'abstain'), 0) AS asked,
           coalesce(sum(weight) FILTER (WHERE vote IS NULL), 0) AS abstained,
           -- unanimous: the first judge (by fingerprint) that is neither consistent nor abstaining names the status
           arg_min(status, judge_fingerprint) FILTER (WHERE status NOT IN ('consistent', 'abstain')) AS problem,
           count(DISTINCT vote) FILTER (WHERE status = 'consistent') AS n_winners,
           max(vote) FILTER (WHERE status = 'consistent') AS unanimous_winner,
           to_json(list({'judge_model': judge_model, 'judge_fingerprint': judge_fingerprint, 'judge_type': judge_type,
                         'weight': weight, 'xy': xy, 'yx': yx, 'status': status, 'vote': vote,
                         'confidence': round(verdict_confidence, 4)} ORDER BY judge_fingerprint))::VARCHAR AS votes
    FROM panel_members
    GROUP BY comparison_id
),
decided AS (
    SELECT t.*,
           (SELECT aggregation FROM panel_rule) AS aggregation,
           wx + wy + wtie AS cast_weight
    FROM tally t
),
statuses AS (
    SELECT *,
           CASE WHEN aggregation = 'unanimous' THEN
                    coalesce(problem, CASE WHEN n_winners = 1 THEN 'consistent'
                                           WHEN n_winners = 0 THEN 'no_vote' ELSE 'judges_disagree' END)
                WHEN cast_weight = 0 THEN coalesce(problem, 'no_vote')
                WHEN wx > cast_weight / 2 OR wy > cast_weight / 2 THEN 'consistent'
                WHEN wtie > cast_weight / 2 THEN 'tie'
                ELSE 'judges_disagree' END AS status
    FROM decided
)
SELECT s.comparison_id,
       s.status,
       CASE WHEN s.status <> 'consistent' THEN NULL
            WHEN s.aggregation = 'unanimous' THEN s.unanimous_winner
            WHEN s.wx > s.wy THEN 'x' ELSE 'y' END AS preferred,
       s.aggregation,
       s.votes,
       to_json({'x': s.wx, 'y': s.wy, 'tie': s.wtie, 'abstain': s.abstained})::VARCHAR AS vote,
       CASE WHEN s.asked > 0 THEN greatest(s.wx, s.wy, s.wtie) / s.asked END AS agreement
FROM statuses s;

-- The decision's confidence: agreement x the mean verdict confidence of the judges that voted for it.
CREATE OR REPLACE TEMP TABLE panel_out AS
SELECT p.*,
       p.agreement * (SELECT avg(m.verdict_confidence) FROM panel_members m
                      WHERE m.comparison_id = p.comparison_id AND m.vote = p.preferred) AS confidence
FROM panel_out p;
