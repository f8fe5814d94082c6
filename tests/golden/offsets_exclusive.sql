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
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(DATE_TRUNC('MONTH', _l) AS DATE) AS _p_month
  FROM base
), framed AS (
  SELECT
    events.*,
    SUM(_v0) OVER w0 AS _m0,
    COUNT(*) OVER w1 AS _m4,
    AVG(_v0) OVER w2 AS _m5
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u
    ORDER BY _o DESC
    RANGE BETWEEN 1209600000000 PRECEDING AND 604800000001 PRECEDING
  ), w1 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
  ), w2 AS (PARTITION BY _u ORDER BY _o RANGE BETWEEN 86399999999 PRECEDING AND 1 PRECEDING)
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    CAST(_p_month - INTERVAL '1' MONTH AS DATE) AS _p_prev,
    CAST(_p_month - INTERVAL '2' MONTH AS DATE) AS _p_prev_plus1,
    CAST(_p_month - INTERVAL '3' MONTH AS DATE) AS _p_prev_plus2,
    COUNT(*) AS _m1,
    SUM(_v0 ORDER BY _o, _tb) AS _m2,
    MAX(_v0) AS _m3
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "tx_id",
  CAST(COALESCE(e._m0, 0) AS DOUBLE) AS "spend_week2",
  CAST(COALESCE(next_month._m1, 0) AS BIGINT) AS "count_next_month",
  CAST(COALESCE(next_month_plus1._m2, 0) AS DOUBLE) AS "spend_month_after_next",
  CAST(next_month_plus2._m3 AS DOUBLE) AS "max_in_three_months",
  CAST(COALESCE(e._m4, 0) AS BIGINT) AS "tx_before_today",
  CAST(e._m5 AS DOUBLE) AS "mean_24h_before"
FROM framed AS e
LEFT JOIN g_month AS next_month
  ON next_month._u = e._u AND next_month._p_prev = e._p_month
LEFT JOIN g_month AS next_month_plus1
  ON next_month_plus1._u = e._u AND next_month_plus1._p_prev_plus1 = e._p_month
LEFT JOIN g_month AS next_month_plus2
  ON next_month_plus2._u = e._u AND next_month_plus2._p_prev_plus2 = e._p_month
ORDER BY
  e._u,
  e._o,
  e._tb;
