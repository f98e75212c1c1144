-- Each (judge version, comparison) parsed in both orders: the candidate preferred in each.
CREATE OR REPLACE TEMP VIEW both_orders AS
SELECT judge_fingerprint, any_value(judge_model) AS judge_model, comparison_id,
       max(preferred) FILTER (WHERE "order" = 'xy') AS first, max(preferred) FILTER (WHERE "order" = 'yx') AS second
FROM parsed GROUP BY judge_fingerprint, comparison_id
HAVING count(*) FILTER (WHERE "order" = 'xy') = 1 AND count(*) FILTER (WHERE "order" = 'yx') = 1
