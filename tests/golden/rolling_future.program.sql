-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   spend_7d: sum of _v0 where _f0, rolling/1w -> double (past-looking)
--   first_24h: first of _v0, rolling/1d -> double (past-looking)
--   drug_next_7d_mean: mean of _v0 where _f1, future/1w -> double (future-looking)
-- and derives from the prologue's columns:
--   _f1: _m in [5122, 5912]
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
    EPOCH_US(TIMEZONE('America/New_York', CAST("ts" AS TIMESTAMP))) AS _e,
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
  _f0,
  _m,
  _e
FROM events
ORDER BY
  _u,
  _o,
  _tb;
