/*
 * Proves the FAISS C API build (deploy/faiss_c) links and works: an
 * IDMap2,Flat index built through the C API stores vectors under our ids,
 * finds each one as its own nearest neighbour, and removes by id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#define DIM 128
#define N 1000

static void fill(float *v, size_t n, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)rand() / (float)RAND_MAX - 0.5f;
}

static void test_idmap_flat_add_search_remove(void **state)
{
    (void)state;
    FaissIndex *index = NULL;
    assert_int_equal(faiss_index_factory(&index, DIM, "IDMap2,Flat", METRIC_L2), 0);
    float *xb = malloc(sizeof(float) * DIM * N);
    idx_t *ids = malloc(sizeof(idx_t) * N);
    fill(xb, (size_t)DIM * N, 42);
    for (idx_t i = 0; i < N; i++)
        ids[i] = 1000000007LL * (i + 1); /* sparse 64-bit ids, as gids are */
    assert_int_equal(faiss_Index_add_with_ids(index, N, xb, ids), 0);
    assert_int_equal(faiss_Index_ntotal(index), N);

    enum { K = 3, Q = 10 };
    idx_t labels[Q * K];
    float dist[Q * K];
    assert_int_equal(faiss_Index_search(index, Q, xb + (size_t)DIM * 500, K, dist, labels), 0);
    for (int q = 0; q < Q; q++) {
        assert_int_equal(labels[q * K], ids[500 + q]);
        assert_true(dist[q * K] < 1e-6f);
        assert_true(dist[q * K + 1] > dist[q * K]);
    }

    /* remove one id; it must no longer be found */
    FaissIDSelectorBatch *sel = NULL;
    assert_int_equal(faiss_IDSelectorBatch_new(&sel, 1, &ids[500]), 0);
    size_t removed = 0;
    assert_int_equal(faiss_Index_remove_ids(index, (FaissIDSelector *)sel, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(faiss_Index_search(index, 1, xb + (size_t)DIM * 500, K, dist, labels), 0);
    for (int k = 0; k < K; k++)
        assert_int_not_equal(labels[k], ids[500]);

    faiss_IDSelector_free((FaissIDSelector *)sel);
    faiss_Index_free(index);
    free(xb);
    free(ids);
}

static void test_error_reported(void **state)
{
    (void)state;
    FaissIndex *index = NULL;
    /* an unknown factory string is an error with a message, not a crash */
    assert_int_not_equal(faiss_index_factory(&index, DIM, "NoSuchIndex", METRIC_L2), 0);
    assert_non_null(faiss_get_last_error());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idmap_flat_add_search_remove),
        cmocka_unit_test(test_error_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
