-- Same verdict in both orders, and how often the response shown first won, over every judge.
SELECT (SELECT count(*) FROM both_orders) AS n_both_orders,
       (SELECT count(*) FILTER (WHERE first = second) FROM both_orders) AS n_consistent,
       (SELECT count(*) FILTER (WHERE preference IN ('A', 'B')) FROM parsed) AS n_decisive,
       (SELECT count(*) FILTER (WHERE preference = 'A') FROM parsed) AS n_first_position_wins
