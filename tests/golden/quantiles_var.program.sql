-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   median_30d: median of _v0 (q=0.5), rolling/30d -> double (past-looking)
--   p10_30d: quantile of _v0 (q=0.1), rolling/30d -> double (past-looking)
--   p90_30d: quantile of _v0 (q=0.9), rolling/30d, fill 0 -> double (past-looking)
--   var_day: var of _v0, expanding/day (key _p_day) -> double (past-looking)
--   q1_week: quantile of _v0 (q=0.25) where _f0, period/week (key _p_week) -> double (future-looking)
--   grocery_median_next_month: median of _v0 (q=0.5) where _f1, next_period/month (key _p_month) -> double (future-looking)
-- and derives from the prologue's columns:
--   _p_day: the day of _o (a DATE)
--   _p_week: the week of _o (a DATE)
--   _f1: _m in [5411, 5422, 5441, 5451, 5462, 5499]
--   _p_month: the month of _o (a DATE)
WITH src AS (
  SELECT
    *
  FROM "transactions"
), base AS (
  SELECT
    "user_id" AS _u,
    "ts" AS _time,
    "tx_id" AS _tb,
    EPOCH_US(CAST("ts" AS TIMESTAMP)) AS _o,
    EPOCH_US(TIMEZONE('Europe/Berlin', CAST("ts" AS TIMESTAMP))) AS _e,
    CAST("amount" AS DOUBLE) AS _v0,
    TRY_CAST("mcc" AS INT) AS _m,
    COALESCE((
      "amount" > 0
    ), FALSE) AS _f0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*
  FROM base
)
SELECT
  _u,
  _time,
  _tb,
  _v0,
  _o,
  _f0,
  _m,
  _e
FROM events
ORDER BY
  _u,
  _o,
  _tb;
