-- Read-only reporting for dashboards (deploy/grafana/): the NOLOGIN group
-- role privid_report may SELECT the report views and nothing else, and every
-- login role that is a member of it is pinned to one tenant by a row in
-- report_role_tenants. A pinned role cannot widen what it sees: for it,
-- analytics_tenant() ignores `privid.tenant_id` (which any session may SET)
-- and analytics_k() never goes below the tenant's k (tenant_report_settings,
-- default 5); a member without a row sees no rows at all. The views become
-- security barriers so a caller's own predicates or functions cannot look at
-- rows of other tenants before the tenant filter. Other roles (the gateway,
-- an operator) keep the 0002 behaviour: `SET privid.tenant_id`.
-- Roles are cluster-wide, so privid_report is created only when missing
-- (the migrating user needs CREATEROLE). Applied by `privid-admin migrate` in
-- one transaction: no BEGIN/COMMIT here. See README "Dashboards".
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'privid_report') THEN
        -- another database of the cluster may be migrating at the same time
        BEGIN
            CREATE ROLE privid_report NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;

-- login role -> the one tenant it reports on (written by the operator, never by the role)
CREATE TABLE report_role_tenants (
    role_name name   PRIMARY KEY,
    tenant_id bigint NOT NULL
);

-- session_user, not current_user: inside SECURITY DEFINER current_user is the owner,
-- and SET ROLE cannot change session_user.
CREATE OR REPLACE FUNCTION analytics_tenant() RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t bigint;
BEGIN
    SELECT tenant_id INTO t FROM public.report_role_tenants WHERE role_name = session_user;
    IF FOUND THEN
        RETURN t;
    END IF;
    IF pg_has_role(session_user, 'privid_report', 'MEMBER')
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        RETURN NULL; -- a reporting member without a tenant sees nothing
    END IF;
    RETURN nullif(current_setting('privid.tenant_id', true), '')::bigint;
END
$$;

CREATE OR REPLACE FUNCTION analytics_k() RETURNS int
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    asked int := nullif(current_setting('privid.k', true), '')::int;
    floor_k int;
BEGIN
    IF EXISTS (SELECT 1 FROM public.report_role_tenants WHERE role_name = session_user) THEN
        SELECT coalesce((SELECT s.k FROM public.tenant_report_settings s
                         JOIN public.report_role_tenants r ON r.tenant_id = s.tenant_id
                         WHERE r.role_name = session_user), 5)
          INTO floor_k;
        RETURN greatest(2, floor_k, coalesce(asked, 0)); -- a pinned role may only raise k
    END IF;
    RETURN greatest(2, coalesce(asked, 5));
END
$$;

-- The 0002 views again, as security barriers, with the tenant and k computed
-- once per query (an InitPlan) rather than per row.
CREATE OR REPLACE VIEW visits_daily WITH (security_barrier = true) AS
SELECT tenant_id,
       (ts AT TIME ZONE 'UTC')::date AS day,
       location,
       count(*) AS visits,
       count(DISTINCT visitor) AS visitors,
       count(*) FILTER (WHERE status = 'new') AS new_visits,
       count(*) FILTER (WHERE status = 'returning') AS returning_visits
FROM visits
WHERE tenant_id = (SELECT analytics_tenant())
GROUP BY tenant_id, day, location;

CREATE OR REPLACE VIEW report_daily WITH (security_barrier = true) AS
SELECT * FROM visits_daily WHERE visitors >= (SELECT analytics_k());

CREATE OR REPLACE VIEW report_frequency WITH (security_barrier = true) AS
SELECT tenant_id, month, visits_per_visitor, count(*) AS visitors
FROM (SELECT tenant_id, date_trunc('month', ts AT TIME ZONE 'UTC')::date AS month, visitor,
             count(*) AS visits_per_visitor
      FROM visits
      WHERE tenant_id = (SELECT analytics_tenant())
      GROUP BY tenant_id, month, visitor) v
GROUP BY tenant_id, month, visits_per_visitor
HAVING count(*) >= (SELECT analytics_k());

CREATE OR REPLACE VIEW report_purchases_daily WITH (security_barrier = true) AS
SELECT tenant_id,
       (ts AT TIME ZONE 'UTC')::date AS day,
       location,
       currency,
       count(*) AS purchases,
       count(DISTINCT visitor) AS buyers,
       sum(amount_minor) AS amount_minor
FROM events
WHERE tenant_id = (SELECT analytics_tenant()) AND type = 'purchase'
GROUP BY tenant_id, day, location, currency
HAVING count(DISTINCT visitor) >= (SELECT analytics_k());

-- The tenant's own metered usage (no visitor data, so no k).
CREATE VIEW report_usage_daily WITH (security_barrier = true) AS
SELECT tenant_id, day, requests, images, faces
FROM usage_daily
WHERE tenant_id = (SELECT analytics_tenant());

REVOKE ALL ON report_role_tenants FROM PUBLIC;
GRANT SELECT ON report_daily, report_frequency, report_purchases_daily, report_usage_daily TO privid_report;
