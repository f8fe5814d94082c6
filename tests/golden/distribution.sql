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
), framed AS (
  SELECT
    events.*,
    SUM(_v0) FILTER(WHERE
      _s1 = 0) OVER w0 AS _m4,
    SUM(_v0) FILTER(WHERE
      _s1 = 1) OVER w0 AS _m5,
    SUM(_v0) FILTER(WHERE
      _s1 = 2) OVER w0 AS _m6,
    COUNT(*) FILTER(WHERE
      _s2 = 0) OVER w1 AS _m7,
    COUNT(*) FILTER(WHERE
      _s2 = 1) OVER w1 AS _m8,
    COUNT(*) FILTER(WHERE
      _s2 = 2) OVER w1 AS _m9,
    COUNT(*) FILTER(WHERE
      _s2 = 3) OVER w1 AS _m10
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ), w1 AS (
    PARTITION BY _u
    ORDER BY _o DESC
    RANGE BETWEEN 604800000000 PRECEDING AND 1 PRECEDING
  )
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    CAST(_p_month - INTERVAL '1' MONTH AS DATE) AS _p_prev,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _f0 AND _s0 = 0) AS _m0,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _f0 AND _s0 = 1) AS _m1,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _f0 AND _s0 = 2) AS _m2,
    SUM(_v0 ORDER BY _o, _tb) FILTER(WHERE
      _f0 AND _s0 = 3) AS _m3
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "tx_id",
  CAST([
    COALESCE(next_month._m0, 0) / NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ),
    COALESCE(next_month._m1, 0) / NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ),
    COALESCE(next_month._m2, 0) / NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ),
    COALESCE(next_month._m3, 0) / NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    )
  ] AS DOUBLE[]) AS "next_month_mix",
  CAST([
    COALESCE(e._m4, 0) / NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0),
    COALESCE(e._m5, 0) / NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0),
    COALESCE(e._m6, 0) / NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0)
  ] AS DOUBLE[]) AS "today_mix",
  CAST([COALESCE(e._m7, 0), COALESCE(e._m8, 0), COALESCE(e._m9, 0), COALESCE(e._m10, 0)] AS DOUBLE[]) AS "next_7d_counts"
FROM framed AS e
LEFT JOIN g_month AS next_month
  ON next_month._u = e._u AND next_month._p_prev = e._p_month
ORDER BY
  e._u,
  e._o,
  e._tb;
