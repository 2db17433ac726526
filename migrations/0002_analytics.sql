-- Analytics: visits and business events delivered from the gateway's LMDB
-- outbox by the writer thread (analytics/writer.c), erasures, daily usage, and
-- the report views. tenant_id leads every key so the schema distributes by
-- tenant (e.g. Citus). Visits and events are range-partitioned by month on ts;
-- a DEFAULT partition takes any row whose month has no partition yet (a very
-- old or far-future ts), so an insert never fails for lack of a partition.
-- analytics_ensure_partitions() creates months ahead; the writer calls it on
-- every connection. Exactly once: the writer inserts with ON CONFLICT DO
-- NOTHING on the primary key, which contains the event id (and ts, because a
-- partitioned table's unique keys must contain the partition key; a replayed
-- event carries the same ts, so it conflicts in the same partition).
-- Applied by `privid-admin migrate` in one transaction: no BEGIN/COMMIT here.

CREATE TABLE visits (
    tenant_id bigint      NOT NULL,
    ts        timestamptz NOT NULL,
    event_id  text        NOT NULL,
    visitor   text        NOT NULL,
    location  text        NOT NULL DEFAULT '',
    camera    text        NOT NULL DEFAULT '',
    status    text        NOT NULL CHECK (status IN ('new', 'returning')),
    distance  real,
    PRIMARY KEY (tenant_id, ts, event_id)
) PARTITION BY RANGE (ts);

-- Business events (POST /v1/events): purchases and custom events of visitors.
CREATE TABLE events (
    tenant_id    bigint      NOT NULL,
    ts           timestamptz NOT NULL,
    event_id     text        NOT NULL,
    visitor      text        NOT NULL,
    type         text        NOT NULL,
    location     text        NOT NULL DEFAULT '',
    amount_minor bigint      CHECK (amount_minor IS NULL OR amount_minor >= 0),
    currency     char(3),
    attrs        jsonb,
    PRIMARY KEY (tenant_id, ts, event_id)
) PARTITION BY RANGE (ts);

CREATE TABLE visits_default PARTITION OF visits DEFAULT;
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Report access paths, tenant first. (tenant_id, ts) is the primary key's prefix.
CREATE INDEX visits_tenant_location_ts ON visits (tenant_id, location, ts);
-- erasure (delete one visitor's rows), per-visitor reports (frequency, retention),
-- and exact distinct visitors from an index-only scan
CREATE INDEX visits_tenant_visitor_ts ON visits (tenant_id, visitor, ts);
CREATE INDEX events_tenant_visitor_ts ON events (tenant_id, visitor, ts);
CREATE INDEX events_tenant_type_ts ON events (tenant_id, type, ts);

-- That an erasure happened, never whom it erased: no visitor ID, no gid.
CREATE TABLE erasures (
    tenant_id bigint      NOT NULL,
    event_id  text        NOT NULL,
    ts        timestamptz NOT NULL,
    visits    bigint      NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX erasures_tenant_ts ON erasures (tenant_id, ts);

-- Daily usage per tenant (metering and quotas' history).
CREATE TABLE usage_daily (
    tenant_id bigint NOT NULL,
    day       date   NOT NULL,
    requests  bigint NOT NULL DEFAULT 0,
    images    bigint NOT NULL DEFAULT 0,
    faces     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- Creates the monthly partition of `parent` (visits or events) holding `month`
-- when it is missing. Rows of that month already in the default partition are
-- moved into it first (PostgreSQL refuses to attach a partition whose range
-- the default still holds rows of), so creating a month late is safe too.
CREATE FUNCTION analytics_ensure_month(parent regclass, month timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    base text := parent::text;
    part text := base || '_' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, base);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE ts >= $1 AND ts < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', base || '_default', part) USING lo, hi;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', base, part, lo, hi);
END
$$;

-- Partitions for the months from `around` - 1 to `around` + `ahead`, both tables.
CREATE FUNCTION analytics_ensure_partitions(around timestamptz DEFAULT now(), ahead int DEFAULT 2)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN -1..ahead LOOP
        PERFORM analytics_ensure_month('visits', around + make_interval(months => i));
        PERFORM analytics_ensure_month('events', around + make_interval(months => i));
    END LOOP;
END
$$;

SELECT analytics_ensure_partitions();

-- ---- report views ----
-- Every view filters on the tenant of the session: a dashboard (or a tenant's
-- read-only role) sets `SET privid.tenant_id = '<id>'` (or ALTER ROLE ... SET)
-- and sees only that tenant's rows; without the setting a view returns
-- nothing. Days are UTC days. k-anonymity: groups with fewer than
-- privid.k (default 5, never below 2) distinct visitors are left out.
CREATE FUNCTION analytics_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('privid.tenant_id', true), '')::bigint
$$;
CREATE FUNCTION analytics_k() RETURNS int LANGUAGE sql STABLE AS $$
    SELECT greatest(2, coalesce(nullif(current_setting('privid.k', true), '')::int, 5))
$$;

-- Daily roll-up per tenant and location. Distinct visitors are computed
-- exactly (count(DISTINCT visitor)) at query time from the visits index
-- (tenant_id, location, ts) rather than stored per day, because distinct
-- counts do not add up across days: a range's distinct visitors must be
-- counted over the range, never summed from days. An estimate (HLL) would
-- allow pre-aggregated sketches, but it is approximate and its error would
-- interact badly with k-anonymity thresholds; exact counts over an index are
-- fast enough at the sizes measured for one tenant.
CREATE VIEW visits_daily AS
SELECT tenant_id,
       (ts AT TIME ZONE 'UTC')::date AS day,
       location,
       count(*) AS visits,
       count(DISTINCT visitor) AS visitors,
       count(*) FILTER (WHERE status = 'new') AS new_visits,
       count(*) FILTER (WHERE status = 'returning') AS returning_visits
FROM visits
WHERE tenant_id = analytics_tenant()
GROUP BY tenant_id, day, location;

-- Per-day report for dashboards: the roll-up with small groups suppressed.
CREATE VIEW report_daily AS
SELECT * FROM visits_daily WHERE visitors >= analytics_k();

-- Visits per visitor per month: how many visitors came once, twice, ...
CREATE VIEW report_frequency AS
SELECT tenant_id, month, visits_per_visitor, count(*) AS visitors
FROM (SELECT tenant_id, date_trunc('month', ts AT TIME ZONE 'UTC')::date AS month, visitor,
             count(*) AS visits_per_visitor
      FROM visits
      WHERE tenant_id = analytics_tenant()
      GROUP BY tenant_id, month, visitor) v
GROUP BY tenant_id, month, visits_per_visitor
HAVING count(*) >= analytics_k();

-- Purchases per day: visitors who bought, revenue per currency.
CREATE VIEW report_purchases_daily AS
SELECT tenant_id,
       (ts AT TIME ZONE 'UTC')::date AS day,
       location,
       currency,
       count(*) AS purchases,
       count(DISTINCT visitor) AS buyers,
       sum(amount_minor) AS amount_minor
FROM events
WHERE tenant_id = analytics_tenant() AND type = 'purchase'
GROUP BY tenant_id, day, location, currency
HAVING count(DISTINCT visitor) >= analytics_k();
