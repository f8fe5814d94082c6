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
    EPOCH_US(TIMEZONE('America/New_York', CAST("ts" AS TIMESTAMP))) AS _e,
    CAST("amount" AS DOUBLE) AS _v0,
    CAST(TRY_CAST("mcc" AS INT) AS BIGINT) AS _v1,
    COALESCE((
      TRY_CAST("mcc" AS INT) IN (5411, 5422, 5441, 5451, 5462, 5499)
    ), FALSE) AS _f0,
    CAST("ts" AS TIMESTAMP) AS _l
  FROM src
), events AS (
  SELECT
    base.*
  FROM base
), framed AS (
  SELECT
    events.*,
    LEAD({'v': _v0}, 1 IGNORE NULLS) OVER w0 AS _m0,
    LEAD({'v': _v1}, 1 IGNORE NULLS) OVER w0 AS _m1,
    LEAD(_e, 1 IGNORE NULLS) OVER w0 AS _m2,
    LEAD(_e, 2 IGNORE NULLS) OVER w1 AS _m3,
    LAG(CASE WHEN _f0 THEN _e END, 1 IGNORE NULLS) OVER w2 AS _m4,
    LAG(CASE WHEN _f0 THEN {'v': _v0} END, 1 IGNORE NULLS) OVER w2 AS _m5
  FROM events
  WINDOW w0 AS (PARTITION BY _u ORDER BY _o, _tb), w1 AS (PARTITION BY _u ORDER BY _o, _tb), w2 AS (PARTITION BY _u ORDER BY _o, _tb)
)
SELECT
  e._u AS "user_id",
  e._time AS "ts",
  e._tb AS "tx_id",
  CAST(STRUCT_EXTRACT(e._m0, 'v') AS DOUBLE) AS "next_amount",
  CAST(STRUCT_EXTRACT(e._m1, 'v') AS BIGINT) AS "next_mcc",
  CAST(CAST(e._m2 - e._e AS DOUBLE) / 1000000 AS DOUBLE) AS "secs_to_next",
  CAST(CAST(e._m3 - e._e AS DOUBLE) / 1000000 AS DOUBLE) AS "secs_to_second_next",
  CAST(CAST(e._e - e._m4 AS DOUBLE) / 1000000 AS DOUBLE) AS "secs_since_grocery",
  CAST(COALESCE(STRUCT_EXTRACT(e._m5, 'v'), 0) AS DOUBLE) AS "prev_grocery_amount",
  CAST(COALESCE(CASE WHEN NOT e._m4 IS NULL THEN 1 END, 0) AS BIGINT) AS "has_prev_grocery"
FROM framed AS e
ORDER BY
  e._u,
  e._o,
  e._tb;
