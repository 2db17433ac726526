/*
 * Bounded FIFO worker pool. One mutex guards the queue; workers sleep on a
 * condition variable. Jobs are linked through their own message link (a job
 * is in the pool's queue or in a loop's message list, never both).
 */
#include <pthread.h>
#include <stdlib.h>
#include "common/error.h"
#include "gateway/pool.h"

struct pv_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    h2o_linklist_t queue;
    int depth, queue_max, stopping, nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    pv_pool_t *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (h2o_linklist_is_empty(&pool->queue) && !pool->stopping)
            pthread_cond_wait(&pool->cv, &pool->mu);
        if (h2o_linklist_is_empty(&pool->queue))
            break; /* stopping and drained */
        pv_job_t *job = H2O_STRUCT_FROM_MEMBER(pv_job_t, message.link, pool->queue.next);
        h2o_linklist_unlink(&job->message.link);
        pool->depth--;
        pthread_mutex_unlock(&pool->mu);
        job->run(job);
        h2o_multithread_send_message(job->receiver, &job->message);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

int pv_pool_create(pv_pool_t **out, int workers, int queue_max)
{
    pv_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL || (pool->threads = calloc((size_t)workers, sizeof(pthread_t))) == NULL) {
        free(pool);
        return PV_ENOMEM;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    h2o_linklist_init_anchor(&pool->queue);
    pool->queue_max = queue_max;
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
            pv_pool_destroy(pool);
            return PV_ENOMEM;
        }
        pool->nthreads++;
    }
    *out = pool;
    return 0;
}

int pv_pool_submit(pv_pool_t *pool, pv_job_t *job)
{
    int ret = 0;
    pthread_mutex_lock(&pool->mu);
    if (pool->stopping || pool->depth >= pool->queue_max) {
        ret = PV_EUNAVAIL;
    } else {
        job->message.link = (h2o_linklist_t){NULL, NULL};
        h2o_linklist_insert(&pool->queue, &job->message.link);
        pool->depth++;
        pthread_cond_signal(&pool->cv);
    }
    pthread_mutex_unlock(&pool->mu);
    return ret;
}

int pv_pool_depth(pv_pool_t *pool)
{
    pthread_mutex_lock(&pool->mu);
    int d = pool->depth;
    pthread_mutex_unlock(&pool->mu);
    return d;
}

void pv_pool_destroy(pv_pool_t *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

void pv_pool_on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        pv_job_t *job = H2O_STRUCT_FROM_MEMBER(pv_job_t, message.link, messages->next);
        h2o_linklist_unlink(&job->message.link);
        job->done(job);
    }
}
