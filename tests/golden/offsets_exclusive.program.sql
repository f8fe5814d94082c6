-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   spend_week2: sum of _v0, future/1w+1w -> double (future-looking)
--   count_next_month: count, next_period/month (key _p_month) -> int64 (future-looking)
--   spend_month_after_next: sum of _v0, next_period/month+1 (key _p_month) -> double (future-looking)
--   max_in_three_months: max of _v0, next_period/month+2 (key _p_month) -> double (future-looking)
--   tx_before_today: count, expanding/day excl. current (key _p_day) -> int64 (past-looking)
--   mean_24h_before: mean of _v0, rolling/1d excl. current -> double (past-looking)
-- and derives from the prologue's columns:
--   _p_month: the month of _o (a DATE)
--   _p_day: the day of _o (a DATE)
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
    CAST("amount" AS DOUBLE) AS _v0,
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
  _o
FROM events
ORDER BY
  _u,
  _o,
  _tb;
