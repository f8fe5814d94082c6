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
    COALESCE((
      "amount" > 0
    ), FALSE) AS _f0,
    COALESCE((
      TRY_CAST("mcc" AS INT) IN (5122, 5912)
    ), FALSE) AS _f1,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    {'o': _o, 'tb': _tb} AS _ord
  FROM base
), framed AS (
  SELECT
    events.*,
    SUM(_v0) FILTER(WHERE
      _f0) OVER w0 AS _m0,
    ARG_MIN(_v0, _ord) FILTER(WHERE
      NOT _v0 IS NULL) OVER w1 AS _m1,
    AVG(_v0) FILTER(WHERE
      _f1) OVER w2 AS _m2
  FROM events
  WINDOW w0 AS (PARTITION BY _u ORDER BY _e RANGE BETWEEN 604799999999 PRECEDING AND CURRENT ROW), w1 AS (PARTITION BY _u ORDER BY _e RANGE BETWEEN 86399999999 PRECEDING AND CURRENT ROW), w2 AS (
    PARTITION BY _u
    ORDER BY _e DESC
    RANGE BETWEEN 604800000000 PRECEDING AND 1 PRECEDING
  )
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "row_id",
  CAST(COALESCE(e._m0, 0) AS DOUBLE) AS "spend_7d",
  CAST(e._m1 AS DOUBLE) AS "first_24h",
  CAST(e._m2 AS DOUBLE) AS "drug_next_7d_mean"
FROM framed AS e
ORDER BY
  e._u,
  e._o,
  e._tb;
