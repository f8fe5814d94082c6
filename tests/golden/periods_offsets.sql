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
), g_quarter AS (
  SELECT
    _u,
    _p_quarter AS _p,
    CAST(_p_quarter - INTERVAL '6' MONTH AS DATE) AS _p_prev_plus1,
    QUANTILE_CONT(_v0, 0.5) AS _m0,
    SUM(_v0 ORDER BY _o, _tb) AS _m1,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _s0 = 0) AS _m2,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _s0 = 1) AS _m3,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _s0 = 2) AS _m4
  FROM events
  GROUP BY
    _u,
    _p_quarter
)
SELECT
  cur_quarter._u AS "user_id",
  cur_quarter._p AS period_start,
  CAST(cur_quarter._m0 AS DOUBLE) AS "median_quarter",
  CAST(COALESCE(next_quarter_plus1._m1, 0) AS DOUBLE) AS "spend_after_next",
  CAST([
    COALESCE(next_quarter_plus1._m2, 0) / NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    ),
    COALESCE(next_quarter_plus1._m3, 0) / NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    ),
    COALESCE(next_quarter_plus1._m4, 0) / NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    )
  ] AS DOUBLE[]) AS "mix_after_next"
FROM g_quarter AS cur_quarter
LEFT JOIN g_quarter AS next_quarter_plus1
  ON next_quarter_plus1._u = cur_quarter._u
  AND next_quarter_plus1._p_prev_plus1 = cur_quarter._p
ORDER BY
  1,
  2;
