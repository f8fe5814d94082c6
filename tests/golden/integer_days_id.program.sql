-- sqltargets native program: the prologue below runs in DuckDB; then one kernel
-- per target passes over each user's sorted rows (sqltargets/execute/kernels.py):
--   week_running_max: max of _v0, expanding/week (key _p_week) -> double (past-looking)
--   distinct_merchants_quarter: count_distinct of _v1, period/quarter (key _p_quarter) -> int64 (future-looking)
--   next_week_last: last of _v0, next_period/week (key _p_week), fill -1 -> double (future-looking)
--   std_year: std of _v0, expanding/year (key _p_year) -> double (past-looking)
-- and derives from the prologue's columns:
--   _p_week: the week of _lus, weeks from weekday 6 (a DATE)
--   _p_quarter: the quarter of _lus (a DATE)
--   _p_year: the year of _lus (a DATE)
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
    EPOCH_US(_l) AS _lus
  FROM base
)
SELECT
  _u,
  _time,
  _tb,
  _v0,
  _lus,
  _v1
FROM events
ORDER BY
  _u,
  _o,
  _tb;
