-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   next_month_mix: distribution of _v0 per _s0 (4 slots, sum) where _f0, next_period/month (key _p_month) -> list (future-looking)
--   today_mix: distribution of _v0 per _s1 (3 slots, sum), expanding/day (key _p_day) -> list (past-looking)
--   next_7d_counts: distribution per _s2 (4 slots, count), future/1w -> list (future-looking)
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
    CAST(CASE
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5814) OR TRY_CAST("mcc" AS INT) BETWEEN 5811 AND 5812
      )
      THEN 1
      WHEN (
        TRY_CAST("mcc" AS INT) BETWEEN 4000 AND 4799
      )
      THEN 2
      ELSE 3
    END AS SMALLINT) AS _s0,
    CAST(CASE
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5552, 5983)
        OR TRY_CAST("mcc" AS INT) BETWEEN 5541 AND 5542
      )
      THEN 1
      ELSE 2
    END AS SMALLINT) AS _s1,
    CAST(CASE
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        TRY_CAST("mcc" AS INT) IN (5552, 5983)
        OR TRY_CAST("mcc" AS INT) BETWEEN 5541 AND 5542
      )
      THEN 1
      WHEN (
        TRY_CAST("mcc" AS INT) IN (4131, 4411, 4511, 4722, 7512)
        OR TRY_CAST("mcc" AS INT) BETWEEN 3000 AND 3999
        OR TRY_CAST("mcc" AS INT) BETWEEN 4111 AND 4112
        OR TRY_CAST("mcc" AS INT) BETWEEN 7011 AND 7012
      )
      THEN 2
      ELSE 3
    END AS SMALLINT) AS _s2,
    COALESCE((
      "amount" > 0
    ), FALSE) AS _f0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(DATE_TRUNC('MONTH', _l) AS DATE) AS _p_month
  FROM base
)
SELECT
  _u,
  _time,
  _tb,
  _v0,
  _f0,
  _p_month,
  _s0,
  _p_day,
  _s1,
  _s2,
  _o
FROM events
ORDER BY
  _u,
  _o,
  _tb;
