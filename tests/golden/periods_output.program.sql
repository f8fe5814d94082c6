-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   grocery_month: sum of _v0 where _f0, period/month (key _p_month) -> double (future-looking)
--   grocery_next_month: sum of _v0 where _f0, next_period/month (key _p_month) -> double (future-looking)
--   top2: top_k of _v0 (k=2), period/month (key _p_month), fill 0 -> list (future-looking)
-- and derives from the prologue's columns:
--   _f0: _m in [5411, 5422, 5441, 5451, 5462, 5499]
--   _p_month: the month of _o (a DATE)
WITH src AS (
  SELECT
    *,
    rowid AS _st_rid
  FROM "transactions"
), base AS (
  SELECT
    "user_id" AS _u,
    "ts" AS _time,
    _st_rid AS _tb,
    EPOCH_US(CAST("ts" AS TIMESTAMP)) AS _o,
    CAST("amount" AS DOUBLE) AS _v0,
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
  _m,
  _o
FROM events
ORDER BY
  _u,
  _o,
  _tb;
