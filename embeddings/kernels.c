/* CPU kernels of the embedding-bag hot loop and of TensorFlow-rule Adam.
 *
 * Compiled on first use by embeddings/kernels.py (any C compiler, no torch
 * headers) and called through ctypes; without a compiler the package falls
 * back to its pure-torch formulation, which computes the same values.
 *
 * Every loop keeps the float32 operation order of the pure-torch path (and so of
 * TensorFlow): it must be built with -ffp-contract=off (no fused multiply-add)
 * and without -ffast-math.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 4    /* TensorFlow's interleaved accumulators over positions */
#define CHUNK 64   /* columns handled per pass, so the accumulators stay in registers/L1 */

/* out[b, :] = mean over t of weight[ids[b, t], :], summed in four interleaved lanes
 * a_r = sum_{t = r mod 4} e_t (each from 0, t increasing), combined as
 * ((a0 + a1) + a2) + a3, then divided by T.  Bags [b0, b1). */
void bag_mean_forward(const float *weight, const int64_t *ids, float *out, int64_t b0,
                      int64_t b1, int64_t T, int64_t D) {
    float acc[LANES][CHUNK];
    const float length = (float)T;
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t *bag = ids + b * T;
        for (int64_t d0 = 0; d0 < D; d0 += CHUNK) {
            const int64_t dc = D - d0 < CHUNK ? D - d0 : CHUNK;
            memset(acc, 0, sizeof(acc));
            for (int64_t t = 0; t < T; ++t) {
                const float *row = weight + bag[t] * D + d0;
                float *lane = acc[t & (LANES - 1)];
                for (int64_t k = 0; k < dc; ++k) lane[k] += row[k];
            }
            float *dst = out + b * D + d0;
            for (int64_t k = 0; k < dc; ++k)
                dst[k] = (((acc[0][k] + acc[1][k]) + acc[2][k]) + acc[3][k]) / length;
        }
    }
}

/* dst[ids[b, t], :] += src[b, :] for every occurrence, in (b, t) order, like
 * TensorFlow's unsorted_segment_sum over the gather's IndexedSlices.  Columns
 * [c0, c1) only, so that threads can split the columns and keep the order. */
void bag_scatter_add(const float *src, const int64_t *ids, float *dst, int64_t B, int64_t T,
                     int64_t D, int64_t c0, int64_t c1) {
    for (int64_t b = 0; b < B; ++b) {
        const float *g = src + b * D;
        const int64_t *bag = ids + b * T;
        for (int64_t t = 0; t < T; ++t) {
            float *row = dst + bag[t] * D;
            for (int64_t k = c0; k < c1; ++k) row[k] += g[k];
        }
    }
}

/* Keras Adam on TensorFlow, elements [i0, i1):
 *   m += (g - m) * c1;  v += (g2 - v) * c2;  p -= (m * alpha) / (sqrt(v) + eps)
 * with g2 = g * g when no per-occurrence squares are given.  sqrtf is the
 * correctly rounded IEEE square root, like tf.sqrt. */
void adam_update(float *p, const float *g, const float *g2, float *m, float *v, int64_t i0,
                 int64_t i1, float alpha, float c1, float c2, float eps) {
    for (int64_t i = i0; i < i1; ++i) {
        const float gi = g[i];
        const float sq = g2 ? g2[i] : gi * gi;
        const float mi = m[i] + (gi - m[i]) * c1;
        const float vi = v[i] + (sq - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - (mi * alpha) / (sqrtf(vi) + eps);
    }
}
