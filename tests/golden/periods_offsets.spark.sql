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
      THEN 1
      ELSE 2
    END AS SMALLINT) AS _s0,
    CAST(`ts` AS TIMESTAMP_NTZ) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'QUARTER') AS TIMESTAMP_NTZ) AS DATE) AS _p_quarter
  FROM base
), g_quarter AS (
  SELECT
    _u,
    _p_quarter AS _p,
    CAST(TIMESTAMPADD(MONTH, -6, CAST(_p_quarter AS TIMESTAMP_NTZ)) AS DATE) AS _p_prev_plus1,
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(_v0))),
        _xs -> CASE
          WHEN SIZE(_xs) = 0
          THEN NULL
          ELSE ELEMENT_AT(
            TRANSFORM(
              ARRAY(CAST(SIZE(_xs) - 1 AS DOUBLE) * CAST(0.5 AS DOUBLE)),
              _h -> ELEMENT_AT(
                TRANSFORM(
                  ARRAY(FLOOR(_h)),
                  _j -> CASE
                    WHEN _h = _j
                    THEN ELEMENT_AT(_xs, CAST(_j + 1 AS INT))
                    ELSE (
                      CAST(1 AS DOUBLE) - (
                        _h - _j
                      )
                    ) * ELEMENT_AT(_xs, CAST(_j + 1 AS INT)) + (
                      _h - _j
                    ) * ELEMENT_AT(_xs, CAST(_j + 2 AS INT))
                  END
                ),
                1
              )
            ),
            1
          )
        END
      ),
      1
    ) AS _m0,
    SUM(_v0) AS _m1,
    SUM(CASE WHEN (
      _s0 = 0
    ) THEN _v0 END) AS _m2,
    SUM(CASE WHEN (
      _s0 = 1
    ) THEN _v0 END) AS _m3,
    SUM(CASE WHEN (
      _s0 = 2
    ) THEN _v0 END) AS _m4
  FROM events
  GROUP BY
    _u,
    _p_quarter
)
SELECT
  cur_quarter._u AS `user_id`,
  cur_quarter._p AS period_start,
  CAST(cur_quarter._m0 AS DOUBLE) AS `median_quarter`,
  CAST(COALESCE(next_quarter_plus1._m1, 0) AS DOUBLE) AS `spend_after_next`,
  CAST(ARRAY(
    CAST(COALESCE(next_quarter_plus1._m2, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    ) AS DOUBLE),
    CAST(COALESCE(next_quarter_plus1._m3, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    ) AS DOUBLE),
    CAST(COALESCE(next_quarter_plus1._m4, 0) AS DOUBLE) / CAST(NULLIF(
      COALESCE(next_quarter_plus1._m2, 0) + COALESCE(next_quarter_plus1._m3, 0) + COALESCE(next_quarter_plus1._m4, 0),
      0
    ) AS DOUBLE)
  ) AS ARRAY<DOUBLE>) AS `mix_after_next`
FROM g_quarter AS cur_quarter
LEFT JOIN g_quarter AS next_quarter_plus1
  ON next_quarter_plus1._u = cur_quarter._u
  AND next_quarter_plus1._p_prev_plus1 = cur_quarter._p
ORDER BY
  1 NULLS LAST,
  2 NULLS LAST;
