WITH src AS (
  SELECT
    *
  FROM `transactions`
), base AS (
  SELECT
    `user_id` AS _u,
    `ts` AS _time,
    `tx_id` AS _tb,
    UNIX_MICROS(
      MAKE_TIMESTAMP(
        YEAR(CAST(`ts` AS TIMESTAMP_NTZ)),
        MONTH(CAST(`ts` AS TIMESTAMP_NTZ)),
        DAY(CAST(`ts` AS TIMESTAMP_NTZ)),
        HOUR(CAST(`ts` AS TIMESTAMP_NTZ)),
        MINUTE(CAST(`ts` AS TIMESTAMP_NTZ)),
        DATE_PART('SECOND', CAST(`ts` AS TIMESTAMP_NTZ)),
        'UTC'
      )
    ) AS _o,
    CAST(`amount` AS DOUBLE) AS _v0,
    CAST(CASE
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5814)
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 5811 AND 5812
      )
      THEN 1
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 4000 AND 4799
      )
      THEN 2
      ELSE 3
    END AS SMALLINT) AS _s0,
    CAST(CASE
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5552, 5983)
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 5541 AND 5542
      )
      THEN 1
      ELSE 2
    END AS SMALLINT) AS _s1,
    CAST(CASE
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5411, 5422, 5441, 5451, 5462, 5499)
      )
      THEN 0
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5552, 5983)
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 5541 AND 5542
      )
      THEN 1
      WHEN (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (4131, 4411, 4511, 4722, 7512)
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 3000 AND 3999
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 4111 AND 4112
        OR CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END BETWEEN 7011 AND 7012
      )
      THEN 2
      ELSE 3
    END AS SMALLINT) AS _s2,
    COALESCE((
      `amount` > 0
    ), FALSE) AS _f0,
    CAST(`ts` AS TIMESTAMP_NTZ) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'MM') AS TIMESTAMP_NTZ) AS DATE) AS _p_month
  FROM base
), framed AS (
  SELECT
    events.*,
    SUM(CASE WHEN (
      _s1 = 0
    ) THEN _v0 END) OVER w0 AS _m4,
    SUM(CASE WHEN (
      _s1 = 1
    ) THEN _v0 END) OVER w0 AS _m5,
    SUM(CASE WHEN (
      _s1 = 2
    ) THEN _v0 END) OVER w0 AS _m6,
    COUNT(CASE WHEN _s2 = 0 THEN 1 END) OVER w1 AS _m7,
    COUNT(CASE WHEN _s2 = 1 THEN 1 END) OVER w1 AS _m8,
    COUNT(CASE WHEN _s2 = 2 THEN 1 END) OVER w1 AS _m9,
    COUNT(CASE WHEN _s2 = 3 THEN 1 END) OVER w1 AS _m10
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o NULLS LAST, _tb NULLS LAST
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
    CAST(TIMESTAMPADD(MONTH, -1, CAST(_p_month AS TIMESTAMP_NTZ)) AS DATE) AS _p_prev,
    SUM(CASE WHEN _f0 AND (
      _s0 = 0
    ) THEN _v0 END) AS _m0,
    SUM(CASE WHEN _f0 AND (
      _s0 = 1
    ) THEN _v0 END) AS _m1,
    SUM(CASE WHEN _f0 AND (
      _s0 = 2
    ) THEN _v0 END) AS _m2,
    SUM(CASE WHEN _f0 AND (
      _s0 = 3
    ) THEN _v0 END) AS _m3
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS `user_id`,
  e._time AS `ts`,
  e._tb AS `tx_id`,
  CAST(ARRAY(
    CAST(COALESCE(next_month._m0, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ) AS DOUBLE),
    CAST(COALESCE(next_month._m1, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ) AS DOUBLE),
    CAST(COALESCE(next_month._m2, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ) AS DOUBLE),
    CAST(COALESCE(next_month._m3, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_month._m0, 0) + COALESCE(next_month._m1, 0) + COALESCE(next_month._m2, 0) + COALESCE(next_month._m3, 0),
      0
    ) AS DOUBLE)
  ) AS ARRAY<DOUBLE>) AS `next_month_mix`,
  CAST(ARRAY(
    CAST(COALESCE(e._m4, 0) AS DOUBLE) / CAST(NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0) AS DOUBLE),
    CAST(COALESCE(e._m5, 0) AS DOUBLE) / CAST(NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0) AS DOUBLE),
    CAST(COALESCE(e._m6, 0) AS DOUBLE) / CAST(NULLIF(COALESCE(e._m4, 0) + COALESCE(e._m5, 0) + COALESCE(e._m6, 0), 0) AS DOUBLE)
  ) AS ARRAY<DOUBLE>) AS `today_mix`,
  CAST(ARRAY(COALESCE(e._m7, 0), COALESCE(e._m8, 0), COALESCE(e._m9, 0), COALESCE(e._m10, 0)) AS ARRAY<DOUBLE>) AS `next_7d_counts`
FROM framed AS e
LEFT JOIN g_month AS next_month
  ON next_month._u = e._u AND next_month._p_prev = e._p_month
ORDER BY
  e._u NULLS LAST,
  e._o NULLS LAST,
  e._tb NULLS LAST;
