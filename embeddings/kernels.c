/* CPU kernels of the embedding-bag hot loop and of TensorFlow-rule Adam.
 *
 * Compiled on first use by embeddings/kernels.py (any C compiler, no torch
 * headers; OpenMP when the compiler has it) and called through ctypes; without a
 * compiler the package falls back to its pure-torch formulation, which computes
 * the same values.
 *
 * Every loop keeps the float32 operation order of the pure-torch path (and so of
 * TensorFlow): it must be built with -ffp-contract=off (no fused multiply-add)
 * and without -ffast-math.  Threads split work only where each element's order
 * stays the same: bags in the forward, the gradient sum and the squared sum in
 * the backward, element ranges in Adam.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 4    /* TensorFlow's interleaved accumulators over positions */
#define CHUNK 64   /* columns handled per pass, so the accumulators stay in registers/L1 */
#define PARALLEL_WORK 65536  /* element updates below which one thread is faster */

/* GCC's -O3 makes the scatter several times slower here (measured at the tutorial's shape):
 * its rows are read right after being written, and -O2's code suits that better. */
#if defined(__GNUC__) && !defined(__clang__)
#define SCATTER_OPT __attribute__((optimize("O2")))
#else
#define SCATTER_OPT
#endif

/* One bag: out = mean over t of weight[bag[t], :], summed in four interleaved lanes
 * a_r = sum_{t = r mod 4} e_t (each from 0, t increasing), combined as
 * ((a0 + a1) + a2) + a3, then divided by T. */
static void bag_mean_one(const float *restrict weight, const int64_t *restrict bag,
                         float *restrict out, int64_t T, int64_t D) {
    float acc[LANES][CHUNK];
    const float length = (float)T;
    for (int64_t d0 = 0; d0 < D; d0 += CHUNK) {
        const int64_t dc = D - d0 < CHUNK ? D - d0 : CHUNK;
        memset(acc, 0, sizeof(acc));
        if (dc == 16) { /* the tutorial's width: a constant trip count vectorizes fully */
            for (int64_t t = 0; t < T; ++t) {
                const float *row = weight + bag[t] * D + d0;
                float *lane = acc[t & (LANES - 1)];
                for (int k = 0; k < 16; ++k) lane[k] += row[k];
            }
        } else {
            for (int64_t t = 0; t < T; ++t) {
                const float *row = weight + bag[t] * D + d0;
                float *lane = acc[t & (LANES - 1)];
                for (int64_t k = 0; k < dc; ++k) lane[k] += row[k];
            }
        }
        for (int64_t k = 0; k < dc; ++k)
            out[d0 + k] = (((acc[0][k] + acc[1][k]) + acc[2][k]) + acc[3][k]) / length;
    }
}

void bag_mean_forward(const float *weight, const int64_t *ids, float *out, int64_t B,
                      int64_t T, int64_t D) {
#pragma omp parallel for schedule(static) if (B * T * D >= PARALLEL_WORK)
    for (int64_t b = 0; b < B; ++b) bag_mean_one(weight, ids + b * T, out + b * D, T, D);
}

/* dst[ids[b, t], :] += src[b, :] for every occurrence, in (b, t) order, like
 * TensorFlow's unsorted_segment_sum over the gather's IndexedSlices. */
SCATTER_OPT static void scatter_one(const float *restrict src, const int64_t *restrict ids,
                                    float *restrict dst, int64_t B, int64_t T, int64_t D) {
    if (D == 16) {
        for (int64_t b = 0; b < B; ++b) {
            const float *g = src + b * 16;
            const int64_t *bag = ids + b * T;
            for (int64_t t = 0; t < T; ++t) {
                float *row = dst + bag[t] * 16;
                for (int k = 0; k < 16; ++k) row[k] += g[k];
            }
        }
        return;
    }
    for (int64_t b = 0; b < B; ++b) {
        const float *g = src + b * D;
        const int64_t *bag = ids + b * T;
        for (int64_t t = 0; t < T; ++t) {
            float *row = dst + bag[t] * D;
            for (int64_t k = 0; k < D; ++k) row[k] += g[k];
        }
    }
}

/* The backward of the bag mean: sums[r] = sum of g[b] and squares[r] = sum of g2[b] over
 * the occurrences of id r, both in occurrence order; the two run on two threads. */
void bag_scatter_sums(const float *g, const float *g2, const int64_t *ids, float *sums,
                      float *squares, int64_t B, int64_t T, int64_t D) {
#pragma omp parallel for schedule(static) num_threads(2) if (B * T * D >= PARALLEL_WORK)
    for (int task = 0; task < 2; ++task)
        scatter_one(task ? g2 : g, ids, task ? squares : sums, B, T, D);
}

/* Keras Adam on TensorFlow:
 *   m += (g - m) * c1;  v += (g2 - v) * c2;  p -= (m * alpha) / (sqrt(v) + eps)
 * with g2 = g * g when no per-occurrence squares are given.  sqrtf is the
 * correctly rounded IEEE square root, like tf.sqrt. */
static void adam_loop(float *restrict p, const float *restrict g, const float *restrict g2,
                      float *restrict m, float *restrict v, int64_t n, float alpha, float c1,
                      float c2, float eps) {
#pragma omp parallel for schedule(static) if (n >= 4 * PARALLEL_WORK)
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        const float sq = g2 ? g2[i] : gi * gi;
        const float mi = m[i] + (gi - m[i]) * c1;
        const float vi = v[i] + (sq - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - (mi * alpha) / (sqrtf(vi) + eps);
    }
}

void adam_update(float *p, const float *g, const float *g2, float *m, float *v, int64_t n,
                 float alpha, float c1, float c2, float eps) {
    if (g2) /* two loops, so that neither has a branch inside and both vectorize */
        adam_loop(p, g, g2, m, v, n, alpha, c1, c2, eps);
    else
        adam_loop(p, g, NULL, m, v, n, alpha, c1, c2, eps);
}
