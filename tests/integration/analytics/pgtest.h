/*
 * Shared by the analytics integration tests: a throwaway database on the
 * PostgreSQL server of the test harness (PRIVID_TEST_PG), migrated with the
 * project's own `privid-admin migrate` code, and small query helpers.
 */
#ifndef PV_TESTS_PGTEST_H
#define PV_TESTS_PGTEST_H

#include <ftw.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <sys/stat.h>

typedef struct {
    char name[64];  /* <prefix>_<pid>_<random> */
    char dsn[1024]; /* PRIVID_TEST_PG pointed at that database */
    PGconn *admin;  /* connection to PRIVID_TEST_PG itself, for CREATE/DROP */
} pgt_db_t;

/* Creates and migrates a fresh database. Returns 0, or 1 after printing
 * "FAIL: ..." (PRIVID_TEST_PG unset, server unreachable, migration error);
 * call pgt_db_drop() either way. */
int pgt_db_create(pgt_db_t *db, const char *prefix, const char *migrations);
/* Drops the database (WITH FORCE) and closes the admin connection. */
void pgt_db_drop(pgt_db_t *db);

/* The single value of a one-row query as an integer; fails the running
 * cmocka test when the query fails. */
long long pgt_scalar(PGconn *c, const char *sql);
/* How many rows of the roll-up visit_rollup (migrations/0005), as the
 * triggers maintained it, differ from a rebuild from visits (zero rows
 * ignored); the rebuild is rolled back. 0 when they agree. */
long long pgt_rollup_diff(PGconn *c);

/* Waits up to timeout_ms for the writer's roll-up thread to apply every
 * pending visit (migrations/0007); returns how many are still pending. */
long long pgt_wait_rollup(PGconn *c, int timeout_ms);
void pgt_sleep_ms(int ms);
/* nftw() callback that removes every entry (FTW_DEPTH | FTW_PHYS). */
int pgt_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw);

#endif
