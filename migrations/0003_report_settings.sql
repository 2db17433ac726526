-- Per-tenant settings of the k-anonymous reports (analytics/reports.c). A
-- tenant without a row uses k = 5; k is never below 2. A report request may
-- raise k for itself but never lower it below the tenant's value here.
-- Applied by `privid-admin migrate` in one transaction: no BEGIN/COMMIT here.
CREATE TABLE tenant_report_settings (
    tenant_id bigint PRIMARY KEY,
    k         int    NOT NULL DEFAULT 5 CHECK (k >= 2 AND k <= 1000)
);
