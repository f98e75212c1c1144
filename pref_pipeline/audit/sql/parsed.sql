-- Verdicts that count: parsed, not failed.
CREATE OR REPLACE TEMP VIEW parsed AS
SELECT * FROM judgments
WHERE error IS NULL AND coalesce(parse_status, 'ok') <> 'unparseable' AND preferred IS NOT NULL
