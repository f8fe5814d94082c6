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
    CAST(TRY_CAST("mcc" AS INT) AS BIGINT) AS _v0,
    CAST("amount" AS DOUBLE) AS _v1,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(DATE_TRUNC('WEEK', _l) AS DATE) AS _p_week,
    CAST(DATE_TRUNC('MONTH', _l) AS DATE) AS _p_month,
    {'o': _o, 'tb': _tb} AS _ord
  FROM base
), framed AS (
  SELECT
    events.*,
    HISTOGRAM(_v0) OVER w0 AS _m0,
    HISTOGRAM(_v1) OVER w1 AS _m2,
    ARG_MIN(_v0, _ord) FILTER(WHERE
      NOT _v0 IS NULL) OVER w2 AS _m3,
    ARG_MAX(_v0, _ord) FILTER(WHERE
      NOT _v0 IS NULL) OVER w3 AS _m4
  FROM events
  WINDOW w0 AS (PARTITION BY _u ORDER BY _o RANGE BETWEEN 7775999999999 PRECEDING AND CURRENT ROW), w1 AS (
    PARTITION BY _u, _p_week
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ), w2 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ), w3 AS (
    PARTITION BY _u
    ORDER BY _o DESC
    RANGE BETWEEN 604800000000 PRECEDING AND 1 PRECEDING
  )
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    HISTOGRAM(_v0) AS _m1
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "tx_id",
  CAST(MAP_KEYS(e._m0)[LIST_POSITION(MAP_VALUES(e._m0), LIST_MAX(MAP_VALUES(e._m0)))] AS BIGINT) AS "usual_mcc_90d",
  CAST(COALESCE(
    MAP_KEYS(cur_month._m1)[LIST_POSITION(MAP_VALUES(cur_month._m1), LIST_MAX(MAP_VALUES(cur_month._m1)))],
    0
  ) AS BIGINT) AS "usual_mcc_month",
  CAST(MAP_KEYS(e._m2)[LIST_POSITION(MAP_VALUES(e._m2), LIST_MAX(MAP_VALUES(e._m2)))] AS DOUBLE) AS "usual_amount_week",
  CAST(e._m3 AS BIGINT) AS "first_mcc_today",
  CAST(e._m4 AS BIGINT) AS "last_mcc_7d"
FROM framed AS e
LEFT JOIN g_month AS cur_month
  ON cur_month._u = e._u AND cur_month._p = e._p_month
ORDER BY
  e._u,
  e._o,
  e._tb;
