-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   next_month_mix: distribution of _v0 per _s0 (4 slots, sum) where _f0, next_period/month (key _p_month) -> list (future-looking)
--   today_mix: distribution of _v0 per _s1 (3 slots, sum), expanding/day (key _p_day) -> list (past-looking)
--   next_7d_counts: distribution per _s2 (4 slots, count), future/1w -> list (future-looking)
-- and derives from the prologue's columns:
--   _p_month: the month of _o (a DATE)
--   _s0: the first i with _m in group i of [5411, 5422, 5441, 5451, 5462, 5499], [5811-5812, 5814], [4000-4799], else 3
--   _p_day: the day of _o (a DATE)
--   _s1: the first i with _m in group i of [5411, 5422, 5441, 5451, 5462, 5499], [5541-5542, 5552, 5983], else 2
--   _s2: the first i with _m in group i of [5411, 5422, 5441, 5451, 5462, 5499], [5541-5542, 5552, 5983], [3000-3999, 4111-4112, 4131, 4411, 4511, 4722, 7011-7012, 7512], else 3
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
  _o,
  _m
FROM events
ORDER BY
  _u,
  _o,
  _tb;
