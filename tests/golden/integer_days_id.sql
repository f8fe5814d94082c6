WITH src AS (
  SELECT
    *
  FROM "transactions"
), base AS (
  SELECT
    "customer" AS _u,
    "day" AS _time,
    "tx_id" AS _tb,
    CASE
      WHEN NOT "day" BETWEEN -738885 AND 2913173
      THEN ERROR(
        CONCAT(
          'time.unit: column ''day'' holds ',
          CAST("day" AS TEXT),
          ', which as day steps after 2024-01-01 is a date outside years 1 to 9999 (allowed: -738885 to 2913173); is the column in another unit?'
        )
      )
      ELSE CAST("day" AS BIGINT)
    END * 86400000000 AS _o,
    CAST("amt" AS DOUBLE) AS _v0,
    "merchant_code" AS _v1,
    CAST('2024-01-01' AS TIMESTAMP) + TO_MICROSECONDS(
      CASE
        WHEN NOT "day" BETWEEN -738885 AND 2913173
        THEN ERROR(
          CONCAT(
            'time.unit: column ''day'' holds ',
            CAST("day" AS TEXT),
            ', which as day steps after 2024-01-01 is a date outside years 1 to 9999 (allowed: -738885 to 2913173); is the column in another unit?'
          )
        )
        ELSE CAST("day" AS BIGINT)
      END * 86400000000
    ) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(DATE_TRUNC('WEEK', _l - INTERVAL '6' DAY) + INTERVAL '6' DAY AS DATE) AS _p_week,
    CAST(DATE_TRUNC('QUARTER', _l) AS DATE) AS _p_quarter,
    CAST(DATE_TRUNC('YEAR', _l) AS DATE) AS _p_year,
    {'o': _o, 'tb': _tb} AS _ord
  FROM base
), framed AS (
  SELECT
    events.*,
    MAX(_v0) OVER w0 AS _m0,
    STDDEV_SAMP(_v0) OVER w1 AS _m3
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u, _p_week
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ), w1 AS (
    PARTITION BY _u, _p_year
    ORDER BY _o, _tb
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
), g_quarter AS (
  SELECT
    _u,
    _p_quarter AS _p,
    COUNT(DISTINCT _v1) AS _m1
  FROM events
  GROUP BY
    _u,
    _p_quarter
), g_week AS (
  SELECT
    _u,
    _p_week AS _p,
    CAST(_p_week - INTERVAL '7' DAY AS DATE) AS _p_prev,
    ARG_MAX(_v0, _ord) FILTER(WHERE
      NOT _v0 IS NULL) AS _m2
  FROM events
  GROUP BY
    _u,
    _p_week
)
SELECT
  e._u AS "customer",
  e._time AS "day",
  e._tb AS "tx_id",
  CAST(e._m0 AS DOUBLE) AS "week_running_max",
  CAST(COALESCE(cur_quarter._m1, 0) AS BIGINT) AS "distinct_merchants_quarter",
  CAST(COALESCE(next_week._m2, -1) AS DOUBLE) AS "next_week_last",
  CAST(e._m3 AS DOUBLE) AS "std_year"
FROM framed AS e
LEFT JOIN g_quarter AS cur_quarter
  ON cur_quarter._u = e._u AND cur_quarter._p = e._p_quarter
LEFT JOIN g_week AS next_week
  ON next_week._u = e._u AND next_week._p_prev = e._p_week
ORDER BY
  e._u,
  e._o,
  e._tb;
