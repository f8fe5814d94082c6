-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   week_running_max: max of _v0, expanding/week (key _p_week) -> double (past-looking)
--   distinct_merchants_quarter: count_distinct of _v1, period/quarter (key _p_quarter) -> int64 (future-looking)
--   next_week_last: last of _v0, next_period/week (key _p_week), fill -1 -> double (future-looking)
--   std_year: std of _v0, expanding/year (key _p_year) -> double (past-looking)
WITH src AS (
  SELECT
    *
  FROM "transactions"
), base AS (
  SELECT
    "customer" AS _u,
    "day" AS _time,
    "tx_id" AS _tb,
    CAST("day" AS BIGINT) * 86400000000 AS _o,
    CAST("amt" AS DOUBLE) AS _v0,
    "merchant_code" AS _v1,
    CAST('2024-01-01' AS TIMESTAMP) + TO_MICROSECONDS(CAST("day" AS BIGINT) * 86400000000) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(DATE_TRUNC('WEEK', _l - INTERVAL '6' DAY) + INTERVAL '6' DAY AS DATE) AS _p_week,
    CAST(DATE_TRUNC('QUARTER', _l) AS DATE) AS _p_quarter,
    CAST(DATE_TRUNC('YEAR', _l) AS DATE) AS _p_year,
    {'o': _o, 'tb': _tb} AS _ord
  FROM base
)
SELECT
  _u,
  _time,
  _tb,
  _v0,
  _p_week,
  _v1,
  _p_quarter,
  _p_year
FROM events
ORDER BY
  _u,
  _o,
  _tb;
