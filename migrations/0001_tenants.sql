-- Tenants mirrored from the LMDB tenants store by privid-admin (LMDB is the
-- truth; this copy exists for analytics joins). A deleted tenant keeps its row
-- with deleted_at set; if its name is reused, the old row is renamed
-- "<name>#<tenant_id>" to keep names unique. Applied by `privid-admin migrate`
-- inside one transaction with its schema_migrations row: no BEGIN/COMMIT here.
CREATE TABLE tenants (
    tenant_id      bigint      PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    mode           text        NOT NULL CHECK (mode IN ('network', 'isolated')),
    retention_days int         NOT NULL,
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz
);
