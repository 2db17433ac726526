-- The roll-up trigger of 0005, cheaper for the common case: visits that
-- arrive after every earlier visit of their visitor (the writer delivers in
-- order). 0005 recomputed, per affected visitor, the contributions of the
-- state before the statement (sign -1) from the same history as the state
-- after (sign +1): for an in-order append the old state has no visit at or
-- after t0, so its contributions are zero and only cost window sorts over the
-- whole history. The -1 side is now kept only for visitors that have an old
-- visit at or after t0 (a late visit, or a DELETE), which gives the same
-- delta: the -1 rows before t0 only ever served as lag context for -1 rows at
-- or after t0. Same transaction, same lock, same results (the tests compare
-- the roll-up with analytics_rollup_rebuild()).
-- Applied by `privid-admin migrate` in one transaction: no BEGIN/COMMIT here.

CREATE OR REPLACE FUNCTION visit_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
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
                LEFT JOIN %1$I n ON n.tenant_id = v.tenant_id AND n.ts = v.ts AND n.event_id = v.event_id),
        -- visitors whose old state had visits at or after t0 (for DELETE: all)
        redo AS (SELECT DISTINCT tenant_id, visitor FROM cur WHERE NOT fresh AND ts >= t0
                 UNION
                 SELECT tenant_id, visitor FROM a WHERE %2$L = 'DELETE')
        SELECT tenant_id, visitor, location, ts, event_id, status, t0, 1 AS sign FROM cur
        UNION ALL
        SELECT tenant_id, visitor, location, ts, event_id, status, t0, -1
        FROM cur JOIN redo USING (tenant_id, visitor) WHERE NOT fresh
        UNION ALL
        SELECT n.tenant_id, n.visitor, n.location, n.ts, n.event_id, n.status, a.t0, -1
        FROM %1$I n JOIN a USING (tenant_id, visitor) WHERE %2$L = 'DELETE'
    $h$, changed, TG_OP));
    RETURN NULL;
END
$$;

-- A writer batch of a few thousand visits sorts tens of thousands of rows in
-- the windows and the aggregate: in memory, not in temporary files.
ALTER FUNCTION visit_rollup_trigger() SET work_mem = '64MB';
