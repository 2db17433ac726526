-- The roll-up of 0005/0006 off the writer's delivery path. Every visit
-- inserted is first recorded in visit_rollup_pending (same transaction, a
-- cheap append); a session with privid.rollup_deferred = 'on' (the
-- analytics writer) stops there, and analytics_rollup_catch_up() applies
-- the pending visits later in chunks (the writer's roll-up thread, on its
-- own connection). Any other INSERT applies its visitors' pending visits at
-- once, as before. The roll-up therefore always equals the roll-up of
-- `visits` minus the pending visits, and reports use it only for a tenant
-- with nothing pending (analytics/reports.c; they read `visits` otherwise).
--
-- A chunk is always ALL the pending visits of some visitors, and a visit
-- still pending that a chunk does not hold (the writer committed it while
-- the chunk was being applied) is left out of both sides of the delta: the
-- visits in the roll-up are exactly those not pending. Order: the
-- per-tenant advisory lock of 0005 is taken by the catch-up, synchronous
-- INSERTs and DELETEs; deferred INSERTs take none (they only append
-- pending rows), so deliveries never wait for a catch-up.
-- Applied by `privid-admin migrate` in one transaction: no BEGIN/COMMIT here.

CREATE TABLE visit_rollup_pending (
    tenant_id bigint      NOT NULL,
    visitor   text        NOT NULL,
    ts        timestamptz NOT NULL,
    event_id  text        NOT NULL,
    PRIMARY KEY (tenant_id, visitor, ts, event_id)
);

-- The chunk being applied: a temporary table of the session (made on first
-- use), filled and emptied within one statement's work, so no other session
-- ever sees it and it never bloats (TRUNCATE, not DELETE).
CREATE FUNCTION analytics_rollup_chunk_ready() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('pg_temp.pv_rollup_chunk') IS NULL THEN
        CREATE TEMP TABLE pv_rollup_chunk (
            tenant_id bigint      NOT NULL,
            visitor   text        NOT NULL,
            ts        timestamptz NOT NULL,
            event_id  text        NOT NULL,
            PRIMARY KEY (tenant_id, visitor, ts, event_id)
        ) ON COMMIT DELETE ROWS;
    END IF;
END
$$;

-- The statement that applies pv_rollup_chunk to the roll-up. `deleted`
-- names the transition table of a DELETE (its rows are gone from visits;
-- those not in the chunk had been applied and leave with sign -1), or is
-- NULL. The caller EXECUTEs it (transition tables are only visible to the
-- trigger function's own statements), then empties the chunk, holding the
-- advisory locks of the chunk's tenants.
CREATE FUNCTION analytics_rollup_chunk_sql(deleted text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT analytics_rollup_sql(format($h$
    WITH d AS (SELECT tenant_id, visitor, location, ts, event_id, status FROM %s),
    a AS (SELECT tenant_id, visitor, min(ts) AS t0
          FROM (SELECT tenant_id, visitor, ts FROM pv_rollup_chunk
                UNION ALL SELECT tenant_id, visitor, ts FROM d) x
          GROUP BY 1, 2),
    -- per visitor and per visit, index probes (OFFSET 0 keeps the planner from turning them into
    -- scans of whole tables, which it did with a large pending backlog)
    cur AS (SELECT v.tenant_id, v.visitor, v.location, v.ts, v.event_id, v.status, a.t0,
                   c.event_id IS NOT NULL AS fresh, p.event_id IS NOT NULL AS later
            FROM a
            CROSS JOIN LATERAL (SELECT * FROM visits v
                                WHERE v.tenant_id = a.tenant_id AND v.visitor = a.visitor OFFSET 0) v
            LEFT JOIN LATERAL (SELECT c.event_id FROM pv_rollup_chunk c
                               WHERE c.tenant_id = v.tenant_id AND c.visitor = v.visitor AND c.ts = v.ts
                                 AND c.event_id = v.event_id OFFSET 0) c ON true
            LEFT JOIN LATERAL (SELECT p.event_id FROM visit_rollup_pending p
                               WHERE p.tenant_id = v.tenant_id AND p.visitor = v.visitor AND p.ts = v.ts
                                 AND p.event_id = v.event_id OFFSET 0) p ON true),
    gone AS (SELECT d.*, a.t0 FROM d JOIN a USING (tenant_id, visitor)
             WHERE NOT EXISTS (SELECT 1 FROM pv_rollup_chunk c
                               WHERE c.tenant_id = d.tenant_id AND c.visitor = d.visitor AND c.ts = d.ts
                                 AND c.event_id = d.event_id)),
    redo AS (SELECT tenant_id, visitor FROM cur WHERE NOT fresh AND NOT later AND ts >= t0
             UNION SELECT tenant_id, visitor FROM gone)
    SELECT tenant_id, visitor, location, ts, event_id, status, t0, 1 AS sign FROM cur WHERE NOT later
    UNION ALL
    SELECT tenant_id, visitor, location, ts, event_id, status, t0, -1
    FROM cur JOIN redo USING (tenant_id, visitor) WHERE NOT fresh AND NOT later
    UNION ALL
    SELECT tenant_id, visitor, location, ts, event_id, status, t0, -1 FROM gone
$h$, CASE WHEN deleted IS NULL
          THEN '(SELECT NULL::bigint AS tenant_id, NULL::text AS visitor, NULL::text AS location, '
               'NULL::timestamptz AS ts, NULL::text AS event_id, NULL::text AS status WHERE false) e'
          ELSE quote_ident(deleted) END))
$f$;

-- The statement that moves every pending visit of the visitors in relation
-- `vis` (tenant_id, visitor) into the chunk (EXECUTEd by the caller).
CREATE FUNCTION analytics_rollup_take_sql(vis text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format('WITH v AS (SELECT DISTINCT tenant_id, visitor FROM %I), '
              'd AS (DELETE FROM visit_rollup_pending p USING v '
              '      WHERE p.tenant_id = v.tenant_id AND p.visitor = v.visitor '
              '      RETURNING p.tenant_id, p.visitor, p.ts, p.event_id) '
              'INSERT INTO pv_rollup_chunk SELECT * FROM d', vis)
$f$;

CREATE OR REPLACE FUNCTION visit_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE WHEN TG_OP = 'INSERT' THEN 'pv_new_visits' ELSE 'pv_old_visits' END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO visit_rollup_pending (tenant_id, visitor, ts, event_id)
        SELECT tenant_id, visitor, ts, event_id FROM pv_new_visits;
        IF current_setting('privid.rollup_deferred', true) = 'on' THEN
            RETURN NULL;
        END IF;
    END IF;
    EXECUTE format('SELECT pg_advisory_xact_lock(7370001, t) FROM (SELECT DISTINCT '
                   '(tenant_id %% 2147483647)::int AS t FROM %I ORDER BY 1) x', changed);
    PERFORM analytics_rollup_chunk_ready();
    EXECUTE analytics_rollup_take_sql(changed);
    EXECUTE analytics_rollup_chunk_sql(CASE WHEN TG_OP = 'DELETE' THEN changed END);
    EXECUTE 'TRUNCATE pv_rollup_chunk';
    RETURN NULL;
END
$$;

-- Applies the pending visits of one tenant's visitors, about max_rows of
-- them (whole visitors); returns how many were applied (0: nothing pending).
-- Tenants take turns (the session remembers the last one), so one busy
-- tenant cannot starve the others. The writer's roll-up thread calls it
-- until it returns 0.
CREATE FUNCTION analytics_rollup_catch_up(max_rows integer DEFAULT 5000) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last bigint := coalesce(nullif(current_setting('privid.rollup_last_tenant', true), '')::bigint, -1);
    t bigint;
    n bigint;
BEGIN
    SELECT tenant_id INTO t FROM visit_rollup_pending WHERE tenant_id > last ORDER BY tenant_id LIMIT 1;
    IF t IS NULL THEN
        SELECT tenant_id INTO t FROM visit_rollup_pending ORDER BY tenant_id LIMIT 1;
    END IF;
    IF t IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('privid.rollup_last_tenant', t::text, false);
    PERFORM pg_advisory_xact_lock(7370001, (t % 2147483647)::int);
    PERFORM analytics_rollup_chunk_ready();
    -- a new snapshot after the lock: what other holders committed is seen
    EXECUTE 'WITH v AS (SELECT DISTINCT visitor FROM (SELECT visitor FROM visit_rollup_pending '
            '                                         WHERE tenant_id = $1 LIMIT $2) x), '
            'd AS (DELETE FROM visit_rollup_pending p USING v WHERE p.tenant_id = $1 AND p.visitor = v.visitor '
            '      RETURNING p.tenant_id, p.visitor, p.ts, p.event_id) '
            'INSERT INTO pv_rollup_chunk SELECT * FROM d' USING t, greatest(max_rows, 1);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        EXECUTE analytics_rollup_chunk_sql(NULL);
    END IF;
    EXECUTE 'TRUNCATE pv_rollup_chunk';
    RETURN n;
END
$$;
-- index probes whatever the statistics say: right after a TRUNCATE or a bulk load they claim the
-- tables are empty, and a sequential scan of visits per visitor made a catch-up 5x slower
ALTER FUNCTION analytics_rollup_catch_up(integer) SET work_mem = '64MB';
ALTER FUNCTION analytics_rollup_catch_up(integer) SET enable_seqscan = off;
ALTER FUNCTION visit_rollup_trigger() SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION visit_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_rollup;
    DELETE FROM visit_rollup_pending;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION analytics_rollup_rebuild(tenant bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_rollup WHERE tenant IS NULL OR tenant_id = tenant;
    DELETE FROM visit_rollup_pending WHERE tenant IS NULL OR tenant_id = tenant;
    EXECUTE analytics_rollup_sql(format(
        'SELECT tenant_id, visitor, location, ts, event_id, status, ''-infinity''::timestamptz AS t0, '
        '1 AS sign FROM visits WHERE %L::bigint IS NULL OR tenant_id = %L::bigint', tenant, tenant));
END
$$;
