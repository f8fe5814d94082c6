-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   median_quarter: median of _v0 (q=0.5), period/quarter (key _p_quarter) -> double (future-looking)
--   spend_after_next: sum of _v0, next_period/quarter+1 (key _p_quarter) -> double (future-looking)
--   mix_after_next: distribution of _v0 per _s0 (3 slots, sum), next_period/quarter+1 (key _p_quarter) -> list (future-looking)
-- and derives from the prologue's columns:
--   _p_quarter: the quarter of _o (a DATE)
--   _s0: the first i with _m in group i of [5411, 5422, 5441, 5451, 5462, 5499], [3000-3999, 4111-4112, 4131, 4411, 4511, 4722, 7011-7012, 7512], else 2
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
  _o,
  _m
FROM events
ORDER BY
  _u,
  _o,
  _tb;
