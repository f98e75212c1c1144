"""Benchmark: the full audit over 1,000,000 synthetic judgment rows and their pairs.

    .venv/bin/python bench/bench_audit.py [--judgments 1000000] [--keep DIR]

Builds a pipeline home's tables (``<home>/tables/<table>/batch=bench/*.parquet``, made with DuckDB SQL
and written as Parquet) in a child process: judgments of two
judges in both orders (with ties, unparseable outputs, failed calls, a position and a length bias),
the comparisons and the pairs that follow from them (texts of 20-300 words), quarantine rows,
``judgment_history`` with an older version of one judge, and human labels. Then, in a fresh child
process, runs what the ``audit_report`` asset runs: ``audit_home`` (every figure, including the
statsmodels length-controlled model), the plots and the report files. Prints a table with wall time
and peak RSS (``resource.getrusage``) of each step. Target: the audit under 10 s and 2 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CATEGORIES = ["customer_service", "coding", "factual", "advice", "creative", "safety", "ambiguous", "math"]


def build(database: str, home: str, n_judgments: int, queue) -> None:
    import duckdb

    started = time.perf_counter()
    n_comparisons = n_judgments // 4  # two judges, two orders
    con = duckdb.connect(database)
    con.execute("CREATE SCHEMA pref")
    con.execute("CREATE TEMP MACRO hh(a, b) AS CAST(hash(a, b) % 1000000007 AS BIGINT)")
    con.execute("CREATE TEMP MACRO hh3(a, b, c) AS CAST(hash(a, b, c) % 1000000007 AS BIGINT)")
    con.execute(f"""
    CREATE TEMP TABLE cmp AS
    SELECT i, 'cmp-' || i AS comparison_id, 'p-' || (i // 3) AS prompt_id,
           'c-' || i || '-x' AS x_id, 'c-' || i || '-y' AS y_id,
           20 + hh(i, 'x') % 281 AS x_words, 20 + hh(i, 'y') % 281 AS y_words,
           {CATEGORIES!r}[1 + (i // 3) % {len(CATEGORIES)}] AS category,
           ['t0.7', 't1.2', 'strong'][1 + hh(i, 'gx') % 3] AS x_gen, ['t0.7', 't1.2', 'strong'][1 + hh(i, 'gy') % 3] AS y_gen,
           TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_minutes(CAST(i % 100000 AS BIGINT)) AS judged_at
    FROM range({n_comparisons}) t(i)
    """)
    # Each judge's underlying choice: the longer response 70% of the time; in each order the verdict
    # follows it 85% of the time, else the first-shown response wins; 2% ties, 1% unparseable, 0.5% errors.
    con.execute("""
    CREATE TEMP TABLE j AS
    WITH judges AS (SELECT * FROM (VALUES ('fp-judge-a', 'openai:judge-a'), ('fp-judge-b', 'anthropic:judge-b')) v(fp, model)),
    base AS (
        SELECT c.*, judges.fp, judges.model, o."order",
               CASE WHEN hh(c.i, judges.fp) % 100 < 70 THEN (CASE WHEN x_words >= y_words THEN 'x' ELSE 'y' END)
                    ELSE (CASE WHEN x_words >= y_words THEN 'y' ELSE 'x' END) END AS belief,
               hh3(c.i, judges.fp, o."order") % 1000 AS r
        FROM cmp c CROSS JOIN judges CROSS JOIN (VALUES ('xy'), ('yx')) o("order")
    )
    SELECT 'j-' || i || '-' || fp || '-' || "order" AS judgment_id, comparison_id, prompt_id, x_id AS candidate_x_id,
           y_id AS candidate_y_id, "order", model AS judge_model, fp AS judge_fingerprint, 'helpfulness' AS criteria,
           CASE WHEN r < 5 OR r BETWEEN 5 AND 14 THEN NULL WHEN r < 35 THEN 'tie'
                WHEN r < 185 THEN 'A'
                ELSE (CASE WHEN (belief = 'x') = ("order" = 'xy') THEN 'A' ELSE 'B' END) END AS preference,
           CASE WHEN r < 15 THEN NULL WHEN r < 35 THEN 'tie' WHEN r < 185 THEN (CASE WHEN "order" = 'xy' THEN 'x' ELSE 'y' END)
                ELSE belief END AS preferred,
           CASE WHEN r < 15 THEN NULL ELSE 0.5 + (r % 50) / 100.0 END AS confidence,
           CASE WHEN r < 5 THEN NULL WHEN r < 15 THEN 'unparseable' ELSE 'ok' END AS parse_status,
           CASE WHEN r < 5 THEN 0 WHEN r < 15 THEN 3 ELSE 1 END AS attempts,
           CASE WHEN r < 5 THEN 'ProviderError: 503' END AS error,
           judged_at, category, i
    FROM base
    """)
    con.execute("""
    CREATE TABLE pref.judgments AS
    SELECT judgment_id, comparison_id, prompt_id, candidate_x_id, candidate_y_id, "order", judge_model,
           judge_fingerprint, criteria, preference, preferred, confidence, 'because' AS reasoning, parse_status,
           NULL::VARCHAR AS parse_error, attempts, NULL::VARCHAR AS raw_output, '[]' AS failed_outputs,
           NULL::VARCHAR AS served_model, 10 AS input_tokens, 5 AS output_tokens, 0.2 AS latency_s, error, judged_at,
           'bench' AS batch_id
    FROM j
    """)
    con.execute("""
    CREATE TEMP TABLE per_judge AS
    SELECT comparison_id, judge_fingerprint,
           CASE WHEN bool_or(error IS NOT NULL) THEN 'error'
                WHEN bool_or(parse_status = 'unparseable') THEN 'unparseable'
                WHEN max(preferred) FILTER (WHERE "order" = 'xy') = max(preferred) FILTER (WHERE "order" = 'yx')
                     THEN (CASE WHEN max(preferred) FILTER (WHERE "order" = 'xy') = 'tie' THEN 'tie' ELSE 'consistent' END)
                ELSE 'inconsistent' END AS status,
           max(preferred) FILTER (WHERE "order" = 'xy') AS winner
    FROM j GROUP BY ALL
    """)
    con.execute("""
    CREATE TABLE pref.comparisons AS
    SELECT c.comparison_id, c.prompt_id, c.x_id AS candidate_x_id, c.y_id AS candidate_y_id,
           CASE WHEN bool_or(p.status = 'error') THEN 'error' WHEN bool_or(p.status = 'unparseable') THEN 'unparseable'
                WHEN bool_or(p.status = 'tie') THEN 'tie' WHEN bool_or(p.status = 'inconsistent') THEN 'inconsistent'
                WHEN count(DISTINCT p.winner) > 1 THEN 'judges_disagree' ELSE 'consistent' END AS status,
           CASE WHEN bool_and(p.status = 'consistent') AND count(DISTINCT p.winner) = 1
                THEN (CASE WHEN any_value(p.winner) = 'x' THEN c.x_id ELSE c.y_id END) END AS winner_id,
           'anthropic:judge-b+openai:judge-a' AS judge_models, 'fp-judge-a+fp-judge-b' AS judge_fingerprints,
           'bench' AS batch_id
    FROM cmp c JOIN per_judge p USING (comparison_id) GROUP BY c.comparison_id, c.prompt_id, c.x_id, c.y_id
    """)
    con.execute("""
    CREATE TABLE pref.preference_pairs AS
    SELECT 'pair-' || c.i AS pair_id, c.prompt_id, 'Prompt ' || c.prompt_id AS prompt,
           rtrim(repeat('word ', CASE WHEN k.winner_id = c.x_id THEN c.x_words ELSE c.y_words END)) AS chosen,
           rtrim(repeat('text ', CASE WHEN k.winner_id = c.x_id THEN c.y_words ELSE c.x_words END)) AS rejected,
           'llm_as_judge' AS generation_method, 'judge-b+judge-a' AS judge_model_id, 'helpfulness' AS criteria,
           c.category, 0.8 AS confidence, 'A|A' AS verdict_ab, 'B|B' AS verdict_ba, 'because' AS reasoning,
           'fp-judge-a+fp-judge-b' AS judge_fingerprint,
           k.winner_id AS chosen_candidate_id, CASE WHEN k.winner_id = c.x_id THEN c.y_id ELSE c.x_id END AS rejected_candidate_id,
           'openai:gen' AS chosen_model, 'openai:gen' AS rejected_model,
           CASE WHEN k.winner_id = c.x_id THEN c.x_gen ELSE c.y_gen END AS chosen_generator,
           CASE WHEN k.winner_id = c.x_id THEN c.y_gen ELSE c.x_gen END AS rejected_generator,
           '{}' AS chosen_sampling, '{}' AS rejected_sampling, 'sampling' AS chosen_strategy, 'sampling' AS rejected_strategy,
           c.judged_at, c.judged_at AS generated_at,
           CASE WHEN k.winner_id = c.x_id THEN c.x_words ELSE c.y_words END AS chosen_words,
           CASE WHEN k.winner_id = c.x_id THEN c.y_words ELSE c.x_words END AS rejected_words,
           'bench' AS batch_id
    FROM cmp c JOIN pref.comparisons k USING (comparison_id) WHERE k.status = 'consistent'
    """)
    con.execute("""
    CREATE TABLE pref.quarantine AS
    SELECT 'q-' || comparison_id AS quarantine_id, 'pairs' AS stage, status AS reason, status AS detail, prompt_id,
           comparison_id, NULL::VARCHAR AS pair_id, comparison_id AS item_id, NULL::VARCHAR AS prompt,
           NULL::VARCHAR AS response_1, NULL::VARCHAR AS response_2, '{}' AS record, now() AS quarantined_at,
           'bench' AS batch_id
    FROM pref.comparisons WHERE status <> 'consistent'
    """)
    # History: today's verdicts (run-2) plus an older version of judge a (run-1) on 40% of the comparisons,
    # which flips about a fifth of them.
    con.execute("""
    CREATE TABLE pref.judgment_history AS
    SELECT judgment_id, judge_fingerprint, comparison_id, prompt_id, category, candidate_x_id, candidate_y_id,
           "order", judge_model, criteria, preference, preferred, confidence, 'because' AS reasoning,
           NULL::VARCHAR AS raw_output, parse_status, error, judged_at, judged_at AS recorded_at, 'run-2' AS run_id,
           'bench' AS batch_id, CASE WHEN judge_fingerprint = 'fp-judge-a' THEN 0 ELSE 1 END AS judge_slot,
           1.0 AS recency_weight
    FROM j
    UNION ALL
    SELECT judgment_id || '-old', 'fp-judge-a-v0', comparison_id, prompt_id, category, candidate_x_id, candidate_y_id,
           "order", judge_model, criteria,
           CASE WHEN hh(i, 'flip') % 5 = 0 AND preference IN ('A', 'B') THEN (CASE preference WHEN 'A' THEN 'B' ELSE 'A' END) ELSE preference END,
           CASE WHEN hh(i, 'flip') % 5 = 0 AND preferred IN ('x', 'y') THEN (CASE preferred WHEN 'x' THEN 'y' ELSE 'x' END) ELSE preferred END,
           confidence, 'because', NULL, parse_status, error, judged_at - INTERVAL 21 DAY, judged_at - INTERVAL 21 DAY,
           'run-1', 'bench', 0, 0.6
    FROM j WHERE judge_fingerprint = 'fp-judge-a' AND i % 5 < 2
    """)
    con.execute("""
    CREATE TABLE pref.human_labels AS
    SELECT 'h-' || comparison_id AS label_id, 'review' AS source, comparison_id, 'pair-' || i AS pair_id, cmp.prompt_id,
           category, CASE WHEN hh(i, 'h') % 10 < 7 THEN 'chosen' ELSE 'rejected' END AS human_preference,
           CASE WHEN hh(i, 'h') % 10 < 7 THEN winner_id
                ELSE (CASE WHEN winner_id = x_id THEN y_id ELSE x_id END) END AS human_winner_id,
           'bench' AS labeller, NULL::VARCHAR AS notes, now() AS labelled_at
    FROM cmp JOIN pref.comparisons USING (comparison_id) WHERE status = 'consistent' AND i % 100 = 0
    """)
    names = ("judgments", "comparisons", "preference_pairs", "quarantine", "judgment_history", "human_labels")
    counts = {t: con.execute(f"SELECT count(*) FROM pref.{t}").fetchone()[0] for t in names}
    tables = Path(home) / "tables"
    for t in names:  # the layout the pipeline writes (pref_pipeline/table_files.py)
        (tables / t / "batch=bench").mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY pref.{t} TO '{tables / t / 'batch=bench' / 'part.parquet'}' (FORMAT parquet)")
    con.close()
    queue.put({"seconds": time.perf_counter() - started, "rows": counts,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "db_mb": sum(f.stat().st_size for f in tables.rglob("*.parquet")) / 2**20})


def audit(home: str, reports: str, queue) -> None:
    started = time.perf_counter()
    from pref_pipeline.audit import audit_home, write_report
    from pref_pipeline.paths import Home

    imported = time.perf_counter()
    figures = audit_home(Home.at(home))
    computed = time.perf_counter()
    write_report(figures, Path(reports), plots=True)
    written = time.perf_counter()
    queue.put({"import_s": imported - started, "audit_s": computed - imported, "report_s": written - computed,
               "total_s": written - started, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "kept": figures["pairs"]["kept"], "pct_longer": figures["length_bias"]["pct_longer_chosen"],
               "consistency": figures["position_bias"]["consistency_rate"],
               "lc": figures["length_controlled"].get("p_longer_wins_1sd"),
               "flips": [t["flip_rate"] for t in figures["drift"]["transitions"]],
               "kappa": [p["kappa"] for p in figures["agreement"]["judge_vs_judge"]],
               "human": figures["agreement"]["human"]["agreement_rate"]})


def in_child(target, *args) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1)
            break
        except Exception:  # noqa: BLE001 - queue.Empty: is the child still alive?
            if not process.is_alive():
                raise SystemExit(f"{target.__name__} failed with exit code {process.exitcode}") from None
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="keep the database and reports in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        database = str(folder / "bench.duckdb")
        Path(database).unlink(missing_ok=True)
        home = folder / "home"
        built = in_child(build, database, str(home), args.judgments)
        result = in_child(audit, str(home), str(folder / "reports"))
    rows = built["rows"]
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + f"  (Parquet {built['db_mb']:.0f} MB)")
    print()
    print("| step | wall time (s) | peak RSS (MB) |")
    print("|---|---:|---:|")
    print(f"| build the synthetic database (not timed against the target) | {built['seconds']:.2f} | {built['peak_rss_mb']:.0f} |")
    print(f"| audit: import pref_pipeline.audit | {result['import_s']:.2f} | |")
    print(f"| audit: every figure (audit_home, incl. statsmodels) | {result['audit_s']:.2f} | |")
    print(f"| audit: plots + audit.json + audit.md | {result['report_s']:.2f} | |")
    print(f"| **audit total (fresh process)** | **{result['total_s']:.2f}** | **{result['peak_rss_mb']:.0f}** |")
    print()
    print(f"sanity: kept {result['kept']:,} pairs, longer chosen {result['pct_longer']}, consistency "
          f"{result['consistency']}, P(1 sd longer wins) {result['lc']}, flip rates {result['flips']}, "
          f"kappa {result['kappa']}, human agreement {result['human']}")
    ok = result["total_s"] < 10 and result["peak_rss_mb"] < 2048
    print("target (< 10 s, < 2 GB):", "met" if ok else "MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
