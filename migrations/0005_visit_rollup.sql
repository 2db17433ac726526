-- Roll-up of visits per tenant, location and UTC day with EXACT distinct
-- visitors over any range of whole days (0002 chose exact counts over HLL:
-- an estimate would blur the k-anonymity threshold). Distinct counts do not
-- add across days, so the roll-up stores, for each visit, the day of its
-- m-th predecessor (the same visitor's m-th previous visit, ordered by
-- (ts, event_id), in the same scope) instead of a per-day distinct count:
--   n0   visits on `day` (only in the row lag_day = day)
--   nM   visits on `day` whose M-th predecessor is on `lag_day` (M = 1..5;
--        '-infinity' when the visitor has fewer than M earlier visits)
--   nnew visits with status 'new' on `day` whose previous 'new' visit of the
--        same visitor is on `lag_day` ('-infinity' when none)
-- For days [A, B), cM = sum of nM over day in [A, B) and lag_day < A counts
-- the visits whose M-th predecessor is before the range; a visitor with at
-- least M visits in the range has exactly one visit in it whose (M-1)-th
-- predecessor is inside and whose M-th is not, so
--   distinct visitors = c1, visitors with >= M visits = cM - c(M-1),
--   visitors with a 'new' visit = sum of nnew with lag_day < A.
-- Two scopes: per_location = false (predecessors over all locations,
-- location = '') and per_location = true (predecessors at that location).
-- Statement-level triggers on visits keep the roll-up in the same transaction
-- as every INSERT or DELETE (the writer's batches and erasures, tests, manual
-- SQL), also for visits arriving out of order: the contributions of each
-- affected visitor's visits from its earliest changed one onwards are
-- recomputed before and after, and the difference is added. A per-tenant
-- advisory lock orders concurrent writers. TRUNCATE of visits empties it;
-- UPDATE of visits is refused (nothing updates visits). Moving rows between
-- partitions (analytics_ensure_month) changes nothing logically and fires no
-- trigger of the parent. analytics_rollup_rebuild() recomputes from visits.
-- Applied by `privid-admin migrate` in one transaction: no BEGIN/COMMIT here.

CREATE TABLE visit_rollup (
    tenant_id    bigint  NOT NULL,
    per_location boolean NOT NULL,
    location     text    NOT NULL,
    day          date    NOT NULL,
    lag_day      date    NOT NULL,
    n0   bigint NOT NULL DEFAULT 0,
    n1   bigint NOT NULL DEFAULT 0,
    n2   bigint NOT NULL DEFAULT 0,
    n3   bigint NOT NULL DEFAULT 0,
    n4   bigint NOT NULL DEFAULT 0,
    n5   bigint NOT NULL DEFAULT 0,
    nnew bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, per_location, location, day, lag_day)
);

-- The signed contributions of visits: `h` holds whole histories of some
-- visitors with `sign` (+1 or -1) and `t0` (the visitor's earliest changed
-- ts); only visits at or after t0 contribute (earlier ones keep their
-- predecessors). Used by the triggers and the rebuild through EXECUTE with
-- h substituted, so the transition tables stay visible.
CREATE FUNCTION analytics_rollup_sql(h text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
SELECT format($q$
WITH h AS (%s),
s AS (
    SELECT tenant_id, false AS per_location, '' AS location, sign, t0, ts, status,
           (ts AT TIME ZONE 'UTC')::date AS day,
           lag(d, 1) OVER w AS l1, lag(d, 2) OVER w AS l2, lag(d, 3) OVER w AS l3,
           lag(d, 4) OVER w AS l4, lag(d, 5) OVER w AS l5,
           lag(d) OVER (PARTITION BY sign, tenant_id, visitor, status ORDER BY ts, event_id) AS lnew
    FROM (SELECT *, (ts AT TIME ZONE 'UTC')::date AS d FROM h) x
    WINDOW w AS (PARTITION BY sign, tenant_id, visitor ORDER BY ts, event_id)
    UNION ALL
    SELECT tenant_id, true, location, sign, t0, ts, status,
           (ts AT TIME ZONE 'UTC')::date,
           lag(d, 1) OVER w, lag(d, 2) OVER w, lag(d, 3) OVER w, lag(d, 4) OVER w, lag(d, 5) OVER w,
           lag(d) OVER (PARTITION BY sign, tenant_id, visitor, location, status ORDER BY ts, event_id)
    FROM (SELECT *, (ts AT TIME ZONE 'UTC')::date AS d FROM h) x
    WINDOW w AS (PARTITION BY sign, tenant_id, visitor, location ORDER BY ts, event_id)),
c AS (
    SELECT s.tenant_id, s.per_location, s.location, s.day, coalesce(u.lag, '-infinity') AS lag_day,
           sum(s.sign) FILTER (WHERE u.m = 0) AS n0, sum(s.sign) FILTER (WHERE u.m = 1) AS n1,
           sum(s.sign) FILTER (WHERE u.m = 2) AS n2, sum(s.sign) FILTER (WHERE u.m = 3) AS n3,
           sum(s.sign) FILTER (WHERE u.m = 4) AS n4, sum(s.sign) FILTER (WHERE u.m = 5) AS n5,
           sum(s.sign) FILTER (WHERE u.m = 6) AS nnew
    FROM s, LATERAL (VALUES (0, s.day), (1, s.l1), (2, s.l2), (3, s.l3), (4, s.l4), (5, s.l5),
                            (CASE WHEN s.status = 'new' THEN 6 END, s.lnew)) u(m, lag)
    WHERE s.ts >= s.t0 AND u.m IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5)
INSERT INTO visit_rollup AS r (tenant_id, per_location, location, day, lag_day, n0, n1, n2, n3, n4, n5, nnew)
SELECT tenant_id, per_location, location, day, lag_day, coalesce(n0, 0), coalesce(n1, 0), coalesce(n2, 0),
       coalesce(n3, 0), coalesce(n4, 0), coalesce(n5, 0), coalesce(nnew, 0)
FROM c
WHERE coalesce(n0, 0) <> 0 OR coalesce(n1, 0) <> 0 OR coalesce(n2, 0) <> 0 OR coalesce(n3, 0) <> 0
   OR coalesce(n4, 0) <> 0 OR coalesce(n5, 0) <> 0 OR coalesce(nnew, 0) <> 0
ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (tenant_id, per_location, location, day, lag_day) DO UPDATE
SET n0 = r.n0 + excluded.n0, n1 = r.n1 + excluded.n1, n2 = r.n2 + excluded.n2, n3 = r.n3 + excluded.n3,
    n4 = r.n4 + excluded.n4, n5 = r.n5 + excluded.n5, nnew = r.nnew + excluded.nnew
$q$, h)
$f$;

-- Delta = contributions in the state after the statement (sign +1) minus
-- those before it (sign -1), over the histories of the visitors that the
-- changed rows (the transition table) touch. After the statement visits holds
-- the new state; the old one is that minus the inserted rows (INSERT) or
-- plus the deleted rows (DELETE).
CREATE FUNCTION visit_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text := CASE WHEN TG_OP = 'INSERT' THEN 'pv_new_visits' ELSE 'pv_old_visits' END;
BEGIN
    -- concurrent writers of one tenant take turns: each statement below then
    -- sees the other's committed visits and roll-up together
    EXECUTE format('SELECT pg_advisory_xact_lock(7370001, t) FROM (SELECT DISTINCT '
                   '(tenant_id %% 2147483647)::int AS t FROM %I ORDER BY 1) x', changed);
    EXECUTE analytics_rollup_sql(format($h$
        WITH a AS (SELECT tenant_id, visitor, min(ts) AS t0 FROM %1$I GROUP BY 1, 2),
        cur AS (SELECT v.tenant_id, v.visitor, v.location, v.ts, v.event_id, v.status, a.t0,
                       (n.event_id IS NOT NULL) AS fresh
                FROM a JOIN visits v ON v.tenant_id = a.tenant_id AND v.visitor = a.visitor
                LEFT JOIN %1$I n ON n.tenant_id = v.tenant_id AND n.ts = v.ts AND n.event_id = v.event_id)
        SELECT tenant_id, visitor, location, ts, event_id, status, t0, 1 AS sign FROM cur
        UNION ALL
        SELECT tenant_id, visitor, location, ts, event_id, status, t0, -1 FROM cur WHERE NOT fresh
        UNION ALL
        SELECT n.tenant_id, n.visitor, n.location, n.ts, n.event_id, n.status, a.t0, -1
        FROM %1$I n JOIN a USING (tenant_id, visitor) WHERE %2$L = 'DELETE'
    $h$, changed, TG_OP));
    RETURN NULL;
END
$$;

CREATE TRIGGER visit_rollup_ins AFTER INSERT ON visits REFERENCING NEW TABLE AS pv_new_visits
    FOR EACH STATEMENT EXECUTE FUNCTION visit_rollup_trigger();
CREATE TRIGGER visit_rollup_del AFTER DELETE ON visits REFERENCING OLD TABLE AS pv_old_visits
    FOR EACH STATEMENT EXECUTE FUNCTION visit_rollup_trigger();

CREATE FUNCTION visit_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_rollup;
    RETURN NULL;
END
$$;
CREATE TRIGGER visit_rollup_trunc AFTER TRUNCATE ON visits FOR EACH STATEMENT
    EXECUTE FUNCTION visit_rollup_truncate();

CREATE FUNCTION visit_rollup_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'visits are never updated (the roll-up visit_rollup assumes it): delete and insert';
END
$$;
CREATE TRIGGER visit_rollup_upd BEFORE UPDATE ON visits FOR EACH STATEMENT
    EXECUTE FUNCTION visit_rollup_no_update();

-- Recomputes the roll-up of one tenant (or all with NULL) from visits.
CREATE FUNCTION analytics_rollup_rebuild(tenant bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM visit_rollup WHERE tenant IS NULL OR tenant_id = tenant;
    EXECUTE analytics_rollup_sql(format(
        'SELECT tenant_id, visitor, location, ts, event_id, status, ''-infinity''::timestamptz AS t0, '
        '1 AS sign FROM visits WHERE %L::bigint IS NULL OR tenant_id = %L::bigint', tenant, tenant));
END
$$;

SELECT analytics_rollup_rebuild();

-- The dashboards' daily view now reads the roll-up (same columns as 0004):
-- a day's distinct visitors at a location are its visits with no earlier
-- visit that day at that location.
CREATE OR REPLACE VIEW visits_daily WITH (security_barrier = true) AS
SELECT tenant_id, day, location,
       sum(n0)::bigint AS visits,
       coalesce(sum(n1) FILTER (WHERE lag_day < day), 0)::bigint AS visitors,
       sum(nnew)::bigint AS new_visits,
       (sum(n0) - sum(nnew))::bigint AS returning_visits
FROM visit_rollup
WHERE tenant_id = (SELECT analytics_tenant()) AND per_location
GROUP BY tenant_id, day, location
HAVING sum(n0) > 0;
