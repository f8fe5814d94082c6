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
      TRY_CAST("mcc" AS INT) IN (5411)
    ), FALSE) AS _f0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day
  FROM base
), framed AS (
  SELECT
    events.*,
    SUM(_v0) FILTER(WHERE
      _f0) OVER w0 AS _m0
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "row_id",
  CAST(COALESCE(e._m0, 0) AS DOUBLE) AS "grocery_daily_running_sum"
FROM framed AS e
ORDER BY
  e._u,
  e._o,
  e._tb;
