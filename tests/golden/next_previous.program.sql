-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   next_amount: first of _v0, next#1 -> double (future-looking)
--   next_mcc: first of _v1, next#1 -> int64 (future-looking)
--   secs_to_next: elapsed, next#1 -> double (future-looking)
--   secs_to_second_next: elapsed, next#2 -> double (future-looking)
--   secs_since_grocery: elapsed where _f0, previous#1 -> double (past-looking)
--   prev_grocery_amount: last of _v0 where _f0, previous#1, fill 0 -> double (past-looking)
--   has_prev_grocery: count where _f0, previous#1 -> int64 (past-looking)
-- and derives from the prologue's columns:
--   _f0: _m in [5411, 5422, 5441, 5451, 5462, 5499]
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
    EPOCH_US(TIMEZONE('America/New_York', CAST("ts" AS TIMESTAMP))) AS _e,
    CAST("amount" AS DOUBLE) AS _v0,
    CAST(TRY_CAST("mcc" AS INT) AS BIGINT) AS _v1,
    TRY_CAST("mcc" AS INT) AS _m,
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
  _v1,
  _m,
  _e
FROM events
ORDER BY
  _u,
  _o,
  _tb;
