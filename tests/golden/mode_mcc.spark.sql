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
    CAST(CASE
      WHEN TYPEOF(`mcc`) IN ('float', 'double')
      THEN TRY_CAST(BROUND(`mcc`) AS INT)
      WHEN TYPEOF(`mcc`) LIKE 'decimal%'
      THEN TRY_CAST(ROUND(`mcc`) AS INT)
      ELSE TRY_CAST(`mcc` AS INT)
    END AS BIGINT) AS _v0,
    CAST(`amount` AS DOUBLE) AS _v1,
    CAST(`ts` AS TIMESTAMP_NTZ) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'WEEK') AS TIMESTAMP_NTZ) AS DATE) AS _p_week,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'MM') AS TIMESTAMP_NTZ) AS DATE) AS _p_month,
    STRUCT(_o AS `o`, _tb AS `tb`) AS _ord
  FROM base
), framed AS (
  SELECT
    events.*,
    MODE(_v0, TRUE) OVER w0 AS _m0,
    MODE(CASE WHEN _v1 = 0 THEN CAST(0 AS DOUBLE) ELSE _v1 END, TRUE) OVER w1 AS _m2,
    MIN_BY(
      _v0,
      CASE
        WHEN NOT _v0 IS NULL
        THEN STRUCT(
          _ord.`o` IS NULL AS o_null,
          _ord.`o` AS `o`,
          _ord.`tb` IS NULL AS tb_null,
          _ord.`tb` AS `tb`
        )
      END
    ) OVER w2 AS _m3,
    MAX_BY(
      _v0,
      CASE
        WHEN NOT _v0 IS NULL
        THEN STRUCT(
          _ord.`o` IS NULL AS o_null,
          _ord.`o` AS `o`,
          _ord.`tb` IS NULL AS tb_null,
          _ord.`tb` AS `tb`
        )
      END
    ) OVER w3 AS _m4
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u
    ORDER BY _o NULLS LAST
    RANGE BETWEEN 7775999999999 PRECEDING AND CURRENT ROW
  ), w1 AS (
    PARTITION BY _u, _p_week
    ORDER BY _o NULLS LAST, _tb NULLS LAST
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ), w2 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o NULLS LAST, _tb NULLS LAST
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
    MODE(_v0, TRUE) AS _m1
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS `user_id`,
  e._time AS `ts`,
  e._tb AS `tx_id`,
  CAST(e._m0 AS BIGINT) AS `usual_mcc_90d`,
  CAST(COALESCE(cur_month._m1, 0) AS BIGINT) AS `usual_mcc_month`,
  CAST(e._m2 AS DOUBLE) AS `usual_amount_week`,
  CAST(e._m3 AS BIGINT) AS `first_mcc_today`,
  CAST(e._m4 AS BIGINT) AS `last_mcc_7d`
FROM framed AS e
LEFT JOIN g_month AS cur_month
  ON cur_month._u = e._u AND cur_month._p = e._p_month
ORDER BY
  e._u NULLS LAST,
  e._o NULLS LAST,
  e._tb NULLS LAST;
