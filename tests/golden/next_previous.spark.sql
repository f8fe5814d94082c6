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
            ARRAY(UNIX_MICROS(TO_UTC_TIMESTAMP(TIMESTAMP_MICROS(_w), 'America/New_York'))),
            _i -> ELEMENT_AT(
              TRANSFORM(
                ARRAY(
                  _w - UNIX_MICROS(FROM_UTC_TIMESTAMP(TIMESTAMP_MICROS(_i + 21600000000), 'America/New_York')) + (
                    _i + 21600000000
                  )
                ),
                _c -> IF(
                  _c > _i
                  AND UNIX_MICROS(FROM_UTC_TIMESTAMP(TIMESTAMP_MICROS(_c), 'America/New_York')) = _w,
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
    CAST(CASE
      WHEN TYPEOF(`mcc`) IN ('float', 'double')
      THEN TRY_CAST(BROUND(`mcc`) AS INT)
      WHEN TYPEOF(`mcc`) LIKE 'decimal%'
      THEN TRY_CAST(ROUND(`mcc`) AS INT)
      ELSE TRY_CAST(`mcc` AS INT)
    END AS BIGINT) AS _v1,
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
    ) AS _f0,
    CAST(`ts` AS TIMESTAMP_NTZ) AS _l
  FROM src
), events AS (
  SELECT
    base.*
  FROM base
), framed AS (
  SELECT
    events.*,
    LEAD(STRUCT(_v0 AS `v`), 1) IGNORE NULLS OVER w0 AS _m0,
    LEAD(STRUCT(_v1 AS `v`), 1) IGNORE NULLS OVER w0 AS _m1,
    LEAD(_e, 1) IGNORE NULLS OVER w0 AS _m2,
    LEAD(_e, 2) IGNORE NULLS OVER w1 AS _m3,
    LAG(CASE WHEN _f0 THEN _e END, 1) IGNORE NULLS OVER w2 AS _m4,
    LAG(CASE WHEN _f0 THEN STRUCT(_v0 AS `v`) END, 1) IGNORE NULLS OVER w2 AS _m5
  FROM events
  WINDOW w0 AS (PARTITION BY _u ORDER BY _o NULLS LAST, _tb NULLS LAST), w1 AS (PARTITION BY _u ORDER BY _o NULLS LAST, _tb NULLS LAST), w2 AS (PARTITION BY _u ORDER BY _o NULLS LAST, _tb NULLS LAST)
)
SELECT
  e._u AS `user_id`,
  e._time AS `ts`,
  e._tb AS `tx_id`,
  CAST(e._m0.`v` AS DOUBLE) AS `next_amount`,
  CAST(e._m1.`v` AS BIGINT) AS `next_mcc`,
  CAST(CAST(CAST(e._m2 - e._e AS DOUBLE) AS DOUBLE) / CAST(1000000 AS DOUBLE) AS DOUBLE) AS `secs_to_next`,
  CAST(CAST(CAST(e._m3 - e._e AS DOUBLE) AS DOUBLE) / CAST(1000000 AS DOUBLE) AS DOUBLE) AS `secs_to_second_next`,
  CAST(CAST(CAST(e._e - e._m4 AS DOUBLE) AS DOUBLE) / CAST(1000000 AS DOUBLE) AS DOUBLE) AS `secs_since_grocery`,
  CAST(COALESCE(e._m5.`v`, 0) AS DOUBLE) AS `prev_grocery_amount`,
  CAST(COALESCE(CASE WHEN NOT e._m4 IS NULL THEN 1 END, 0) AS BIGINT) AS `has_prev_grocery`
FROM framed AS e
ORDER BY
  e._u NULLS LAST,
  e._o NULLS LAST,
  e._tb NULLS LAST;
