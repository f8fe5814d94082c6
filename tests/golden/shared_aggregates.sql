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
    COALESCE((
      TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
    ), FALSE) AS _f0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(DATE_TRUNC('MONTH', _l) AS DATE) AS _p_month
  FROM base
), framed AS (
  SELECT
    events.*,
    SUM(_v0) FILTER(WHERE
      _f0) OVER w0 AS _m0,
    COUNT(*) FILTER(WHERE
      _f0) OVER w0 AS _m1,
    COUNT(_v0) FILTER(WHERE
      _f0) OVER w0 AS _m2,
    MAX(_v0) FILTER(WHERE
      _f0) OVER w0 AS _m3
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u, _p_month
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "row_id",
  CAST(COALESCE(e._m0, 0) AS DOUBLE) AS "grocery_month_sum",
  CAST(COALESCE(e._m1, 0) AS BIGINT) AS "grocery_month_count",
  CAST(e._m0 / NULLIF(e._m2, 0) AS DOUBLE) AS "grocery_month_mean",
  CAST(e._m3 AS DOUBLE) AS "grocery_month_max"
FROM framed AS e
ORDER BY
  e._u,
  e._o,
  e._tb;
