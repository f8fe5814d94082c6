-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   median_quarter: median of _v0 (q=0.5), period/quarter (key _p_quarter) -> double (future-looking)
--   spend_after_next: sum of _v0, next_period/quarter+1 (key _p_quarter) -> double (future-looking)
--   mix_after_next: distribution of _v0 per _s0 (3 slots, sum), next_period/quarter+1 (key _p_quarter) -> list (future-looking)
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
        TRY_CAST("mcc" AS INT) IN (4131, 4411, 4511, 4722, 7512)
        OR TRY_CAST("mcc" AS INT) BETWEEN 3000 AND 3999
        OR TRY_CAST("mcc" AS INT) BETWEEN 4111 AND 4112
        OR TRY_CAST("mcc" AS INT) BETWEEN 7011 AND 7012
      )
      THEN 1
      ELSE 2
    END AS SMALLINT) AS _s0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(DATE_TRUNC('QUARTER', _l) AS DATE) AS _p_quarter
  FROM base
)
SELECT
  _u,
  _time,
  _tb,
  _v0,
  _p_quarter,
  _s0
FROM events
ORDER BY
  _u,
  _o,
  _tb;
