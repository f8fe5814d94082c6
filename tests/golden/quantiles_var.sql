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
    COALESCE((
      "amount" > 0
    ), FALSE) AS _f0,
    COALESCE((
      TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
    ), FALSE) AS _f1,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(DATE_TRUNC('WEEK', _l) AS DATE) AS _p_week,
    CAST(DATE_TRUNC('MONTH', _l) AS DATE) AS _p_month
  FROM base
), framed AS (
  SELECT
    events.*,
    QUANTILE_CONT(_v0, 0.5) OVER w0 AS _m0,
    QUANTILE_CONT(_v0, 0.1) OVER w0 AS _m1,
    QUANTILE_CONT(_v0, 0.9) OVER w0 AS _m2,
    VARIANCE(_v0) OVER w1 AS _m3
  FROM events
  WINDOW w0 AS (PARTITION BY _u ORDER BY _e RANGE BETWEEN 2591999999999 PRECEDING AND CURRENT ROW), w1 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
), g_week AS (
  SELECT
    _u,
    _p_week AS _p,
    QUANTILE_CONT(_v0, 0.25) FILTER(WHERE
      _f0) AS _m4
  FROM events
  GROUP BY
    _u,
    _p_week
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    CAST(_p_month - INTERVAL '1' MONTH AS DATE) AS _p_prev,
    QUANTILE_CONT(_v0, 0.5) FILTER(WHERE
      _f1) AS _m5
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "tx_id",
  CAST(e._m0 AS DOUBLE) AS "median_30d",
  CAST(e._m1 AS DOUBLE) AS "p10_30d",
  CAST(COALESCE(e._m2, 0) AS DOUBLE) AS "p90_30d",
  CAST(e._m3 AS DOUBLE) AS "var_day",
  CAST(cur_week._m4 AS DOUBLE) AS "q1_week",
  CAST(next_month._m5 AS DOUBLE) AS "grocery_median_next_month"
FROM framed AS e
LEFT JOIN g_week AS cur_week
  ON cur_week._u = e._u AND cur_week._p = e._p_week
LEFT JOIN g_month AS next_month
  ON next_month._u = e._u AND next_month._p_prev = e._p_month
ORDER BY
  e._u,
  e._o,
  e._tb;
