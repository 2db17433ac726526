/*
 * The worker pool on a real h2o evloop: jobs run on worker threads and
 * complete on the submitting loop's thread; a full queue refuses at once;
 * destroy finishes everything queued.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "common/error.h"
#include "gateway/pool.h"

typedef struct {
    pv_job_t super;
    pthread_t ran_on, done_on;
    int *done_count;
    useconds_t work_us;
} test_job_t;

static void run(pv_job_t *j)
{
    test_job_t *t = (test_job_t *)j;
    t->ran_on = pthread_self();
    if (t->work_us)
        usleep(t->work_us);
}

static void done(pv_job_t *j)
{
    test_job_t *t = (test_job_t *)j;
    t->done_on = pthread_self();
    (*t->done_count)++;
}

typedef struct {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
} loop_t;

static void loop_init(loop_t *l)
{
    l->loop = h2o_evloop_create();
    l->queue = h2o_multithread_create_queue(l->loop);
    h2o_multithread_register_receiver(l->queue, &l->receiver, pv_pool_on_done);
}

static void loop_dispose(loop_t *l)
{
    h2o_multithread_unregister_receiver(l->queue, &l->receiver);
    h2o_multithread_destroy_queue(l->queue);
    h2o_evloop_run(l->loop, 0);
    h2o_evloop_destroy(l->loop);
}

static void test_jobs_complete_on_loop(void **state)
{
    (void)state;
    loop_t l;
    loop_init(&l);
    pv_pool_t *pool;
    assert_int_equal(pv_pool_create(&pool, 2, 64), 0);
    enum { N = 50 };
    test_job_t jobs[N] = {0};
    int ndone = 0;
    for (int i = 0; i < N; i++) {
        jobs[i].super.run = run;
        jobs[i].super.done = done;
        jobs[i].super.receiver = &l.receiver;
        jobs[i].done_count = &ndone;
        assert_int_equal(pv_pool_submit(pool, &jobs[i].super), 0);
    }
    for (int spins = 0; ndone < N && spins < 1000; spins++)
        h2o_evloop_run(l.loop, 10);
    assert_int_equal(ndone, N);
    for (int i = 0; i < N; i++) {
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
        assert_true(pthread_equal(jobs[i].done_on, pthread_self()));
    }
    pv_pool_destroy(pool);
    loop_dispose(&l);
}

static void test_full_queue_refuses(void **state)
{
    (void)state;
    loop_t l;
    loop_init(&l);
    pv_pool_t *pool;
    /* one worker busy for a while, room for 3 waiting */
    assert_int_equal(pv_pool_create(&pool, 1, 3), 0);
    test_job_t jobs[10] = {0};
    int ndone = 0, accepted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        jobs[i].super.run = run;
        jobs[i].super.done = done;
        jobs[i].super.receiver = &l.receiver;
        jobs[i].done_count = &ndone;
        jobs[i].work_us = 50000;
        int r = pv_pool_submit(pool, &jobs[i].super);
        if (r == 0)
            accepted++;
        else {
            assert_int_equal(r, PV_EUNAVAIL);
            refused++;
        }
        if (i == 0)
            usleep(10000); /* let the worker take the first job */
    }
    assert_true(accepted >= 3 && accepted <= 4);
    assert_int_equal(accepted + refused, 10);
    assert_true(pv_pool_depth(pool) <= 3);
    /* destroy finishes what was accepted; the loop still receives the completions */
    pv_pool_destroy(pool);
    for (int spins = 0; ndone < accepted && spins < 100; spins++)
        h2o_evloop_run(l.loop, 10);
    assert_int_equal(ndone, accepted);
    loop_dispose(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_complete_on_loop),
        cmocka_unit_test(test_full_queue_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
