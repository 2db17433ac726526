/*
 * libFuzzer target for business events (tenants/events.c): the input is a
 * POST /v1/events body. It goes through pv_events_parse, pv_event_check on
 * each event, and pv_events_append into a real LMDB store (one per process,
 * in a temporary directory removed at exit) whose tenant knows one visitor:
 * the placeholder visitor "VISITOR" is replaced by that visitor's ID so the
 * fuzzer reaches the accepted and duplicate paths, not only rejections.
 */
#include <ftw.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/error.h"
#include "tenants/events.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

#define NOW_MS 1796378400000LL /* 2026-12-04T10:00:00Z: the seeds' times are around it */

static char dir[64];
static pv_tenants_t *store;
static pv_tenant_t tenant;
static pv_visitor_t visitor;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    pv_tenants_close(store);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/pv_fuzz_events_XXXXXX");
    pv_visit_t v = {.gid = 7, .ts_ms = NOW_MS, .location = "", .camera = "", .is_new = 1, .distance = -1};
    if (mkdtemp(dir) == NULL || pv_tenants_open(&store, dir) != 0 ||
        pv_tenants_create(store, &tenant, "fuzz", PV_TENANT_NETWORK, 30) != 0 ||
        pv_visits_record(store, &tenant, &v, 1, &visitor) != 0)
        abort();
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pv_event_result_t results[PV_EVENTS_BATCH_MAX];
    json_t *events = NULL;
    pv_events_error_t err;
    size_t accepted;
    char reason[PV_EVENT_REASON_MAX];

    if (store == NULL)
        init();
    if (pv_events_parse(&events, (const char *)data, size, &err) != 0) {
        if (events != NULL || (err.status != 400 && err.status != 413 && err.status != 422) || err.text[0] == '\0')
            abort();
        return 0;
    }
    if (events == NULL || json_array_size(events) == 0 || json_array_size(events) > PV_EVENTS_BATCH_MAX)
        abort();
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i);
        if (pv_event_check(ev, NOW_MS, 30, reason, sizeof(reason)) == 0 && reason[0] != '\0')
            abort();
        json_t *vis = json_object_get(ev, "visitor");
        if (json_is_string(vis) && strcmp(json_string_value(vis), "VISITOR") == 0)
            json_object_set_new(ev, "visitor", json_string(visitor.id));
    }
    int rc = pv_events_append(store, &tenant, events, NOW_MS, results, &accepted);
    if (rc != 0 && rc != PV_ELIMIT) /* a full map in a long run is the only expected failure */
        abort();
    for (size_t i = 0; rc == 0 && i < json_array_size(events); i++)
        if ((results[i].status == PV_EVENT_REJECTED) != (results[i].reason[0] != '\0'))
            abort();
    json_decref(events);
    return 0;
}
