-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   usual_mcc_90d: mode of _v0, rolling/90d -> int64 (past-looking)
--   usual_mcc_month: mode of _v0, period/month (key _p_month), fill 0 -> int64 (future-looking)
--   usual_amount_week: mode of _v1, expanding/week (key _p_week) -> double (past-looking)
--   first_mcc_today: first of _v0, expanding/day (key _p_day) -> int64 (past-looking)
--   last_mcc_7d: last of _v0, future/1w -> int64 (future-looking)
-- and derives from the prologue's columns:
--   _p_month: the month of _o (a DATE)
--   _p_week: the week of _o (a DATE)
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
    CAST(TRY_CAST("mcc" AS INT) AS BIGINT) AS _v0,
    CAST("amount" AS DOUBLE) AS _v1,
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
  _v1
FROM events
ORDER BY
  _u,
  _o,
  _tb;
