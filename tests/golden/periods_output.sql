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
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    CAST(_p_month - INTERVAL '1' MONTH AS DATE) AS _p_prev,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _f0) AS _m0,
    MAX(_v0, 2) FILTER(WHERE
      NOT _v0 IS NULL) AS _m1
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  cur_month._u AS "user_id",
  cur_month._p AS period_start,
  CAST(COALESCE(cur_month._m0, 0) AS DOUBLE) AS "grocery_month",
  CAST(COALESCE(next_month._m0, 0) AS DOUBLE) AS "grocery_next_month",
  CAST(LIST_RESIZE(COALESCE(cur_month._m1, []), 2, 0) AS DOUBLE[]) AS "top2"
FROM g_month AS cur_month
LEFT JOIN g_month AS next_month
  ON next_month._u = cur_month._u AND next_month._p_prev = cur_month._p
ORDER BY
  1,
  2;
