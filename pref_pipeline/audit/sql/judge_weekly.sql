-- Each judge version's figures by week.
SELECT judge_fingerprint, any_value(judge_model) AS judge_model, date_trunc('week', judged_at) AS week,
       count(*) AS n, count(*) FILTER (WHERE preference IN ('A', 'B')) AS n_decisive,
       count(*) FILTER (WHERE preference = 'A') AS n_first_wins,
       count(*) FILTER (WHERE parse_status = 'unparseable') AS n_unparseable
FROM judgment_history GROUP BY judge_fingerprint, week ORDER BY week, judge_model, judge_fingerprint
