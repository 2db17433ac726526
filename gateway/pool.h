/*
 * The gateway's worker pool: blocking work (inference, gallery search, LMDB
 * writes) runs on M worker threads, never on an event loop. The queue is
 * bounded: a full queue refuses at once (the caller answers 503), so
 * overload never becomes a growing backlog. A finished job travels back to
 * the event loop that submitted it through h2o's multithread queue.
 */
#ifndef PV_GATEWAY_POOL_H
#define PV_GATEWAY_POOL_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

typedef struct pv_pool pv_pool_t;
typedef struct pv_job pv_job_t;

/*
 * A unit of work. The submitter allocates it (usually embedded in a larger
 * struct as `super`), sets run/done/receiver, and owns it again when done()
 * runs on its event loop. `run` executes on a worker thread.
 */
struct pv_job {
    h2o_multithread_message_t message; /* must stay first */
    void (*run)(pv_job_t *job);
    void (*done)(pv_job_t *job);
    h2o_multithread_receiver_t *receiver; /* the submitting loop's receiver */
};

/* Creates a pool of `workers` threads with room for `queue_max` waiting jobs. */
int pv_pool_create(pv_pool_t **out, int workers, int queue_max);

/*
 * Queues job. Returns 0, or PV_EUNAVAIL when queue_max jobs are already
 * waiting (or the pool is stopping); then done() is never called.
 */
int pv_pool_submit(pv_pool_t *pool, pv_job_t *job);

/* Jobs waiting (not yet running); a snapshot for metrics. */
int pv_pool_depth(pv_pool_t *pool);

/*
 * Refuses new jobs, finishes those queued and running, joins the threads and
 * frees the pool. Messages for finished jobs are still delivered to their
 * loops, which must keep running until they have received them. NULL is a no-op.
 */
void pv_pool_destroy(pv_pool_t *pool);

/* The receiver callback to register on each loop's queue: runs done() for each finished job. */
void pv_pool_on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
