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
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(
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
          )
        ),
        _w -> ELEMENT_AT(
          TRANSFORM(
            ARRAY(UNIX_MICROS(TO_UTC_TIMESTAMP(TIMESTAMP_MICROS(_w), 'Europe/Berlin'))),
            _i -> ELEMENT_AT(
              TRANSFORM(
                ARRAY(
                  _w - UNIX_MICROS(FROM_UTC_TIMESTAMP(TIMESTAMP_MICROS(_i + 21600000000), 'Europe/Berlin')) + (
                    _i + 21600000000
                  )
                ),
                _c -> IF(
                  _c > _i
                  AND UNIX_MICROS(FROM_UTC_TIMESTAMP(TIMESTAMP_MICROS(_c), 'Europe/Berlin')) = _w,
                  _c,
                  _i
                )
              ),
              1
            )
          ),
          1
        )
      ),
      1
    ) AS _e,
    CAST(`amount` AS DOUBLE) AS _v0,
    COALESCE((
      `amount` > 0
    ), FALSE) AS _f0,
    COALESCE(
      (
        CASE
          WHEN TYPEOF(`mcc`) IN ('float', 'double')
          THEN TRY_CAST(BROUND(`mcc`) AS INT)
          WHEN TYPEOF(`mcc`) LIKE 'decimal%'
          THEN TRY_CAST(ROUND(`mcc`) AS INT)
          ELSE TRY_CAST(`mcc` AS INT)
        END IN (5411, 5422, 5441, 5451, 5462, 5499)
      ),
      FALSE
    ) AS _f1,
    CAST(`ts` AS TIMESTAMP_NTZ) AS _l
  FROM src
), events AS (
  SELECT
    base.*,
    CAST(_l AS DATE) AS _p_day,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'WEEK') AS TIMESTAMP_NTZ) AS DATE) AS _p_week,
    CAST(CAST(TRUNC(CAST(_l AS DATE), 'MM') AS TIMESTAMP_NTZ) AS DATE) AS _p_month
  FROM base
), framed AS (
  SELECT
    events.*,
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(_v0) OVER w0)),
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
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(_v0) OVER w0)),
        _xs -> CASE
          WHEN SIZE(_xs) = 0
          THEN NULL
          ELSE ELEMENT_AT(
            TRANSFORM(
              ARRAY(CAST(SIZE(_xs) - 1 AS DOUBLE) * CAST(0.1 AS DOUBLE)),
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
    ) AS _m1,
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(_v0) OVER w0)),
        _xs -> CASE
          WHEN SIZE(_xs) = 0
          THEN NULL
          ELSE ELEMENT_AT(
            TRANSFORM(
              ARRAY(CAST(SIZE(_xs) - 1 AS DOUBLE) * CAST(0.9 AS DOUBLE)),
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
    ) AS _m2,
    VARIANCE(_v0) OVER w1 AS _m3
  FROM events
  WINDOW w0 AS (
    PARTITION BY _u
    ORDER BY _e NULLS LAST
    RANGE BETWEEN 2591999999999 PRECEDING AND CURRENT ROW
  ), w1 AS (
    PARTITION BY _u, _p_day
    ORDER BY _o NULLS LAST, _tb NULLS LAST
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
), g_week AS (
  SELECT
    _u,
    _p_week AS _p,
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(CASE WHEN _f0 THEN _v0 END))),
        _xs -> CASE
          WHEN SIZE(_xs) = 0
          THEN NULL
          ELSE ELEMENT_AT(
            TRANSFORM(
              ARRAY(CAST(SIZE(_xs) - 1 AS DOUBLE) * CAST(0.25 AS DOUBLE)),
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
    ) AS _m4
  FROM events
  GROUP BY
    _u,
    _p_week
), g_month AS (
  SELECT
    _u,
    _p_month AS _p,
    CAST(TIMESTAMPADD(MONTH, -1, CAST(_p_month AS TIMESTAMP_NTZ)) AS DATE) AS _p_prev,
    ELEMENT_AT(
      TRANSFORM(
        ARRAY(SORT_ARRAY(COLLECT_LIST(CASE WHEN _f1 THEN _v0 END))),
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
    ) AS _m5
  FROM events
  GROUP BY
    _u,
    _p_month
)
SELECT
  e._u AS `user_id`,
  e._time AS `ts`,
  e._tb AS `tx_id`,
  CAST(e._m0 AS DOUBLE) AS `median_30d`,
  CAST(e._m1 AS DOUBLE) AS `p10_30d`,
  CAST(COALESCE(e._m2, 0) AS DOUBLE) AS `p90_30d`,
  CAST(e._m3 AS DOUBLE) AS `var_day`,
  CAST(cur_week._m4 AS DOUBLE) AS `q1_week`,
  CAST(next_month._m5 AS DOUBLE) AS `grocery_median_next_month`
FROM framed AS e
LEFT JOIN g_week AS cur_week
  ON cur_week._u = e._u AND cur_week._p = e._p_week
LEFT JOIN g_month AS next_month
  ON next_month._u = e._u AND next_month._p_prev = e._p_month
ORDER BY
  e._u NULLS LAST,
  e._o NULLS LAST,
  e._tb NULLS LAST;
