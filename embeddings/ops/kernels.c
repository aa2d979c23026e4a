/* CPU kernels of the embedding-bag hot loop and of TensorFlow-rule Adam.
 *
 * Compiled on first use by embeddings/native.py (any C compiler, no torch headers;
 * OpenMP when the compiler has it) and called through ctypes from embeddings/ops/cpu.py;
 * without a compiler the package falls back to its pure-torch formulation
 * (embeddings/ops/reference.py), which computes the same values.
 *
 * Every loop keeps the float32 operation order of the pure-torch path (and so of
 * TensorFlow): it must be built with -ffp-contract=off (no fused multiply-add)
 * and without -ffast-math.  Threads split work only where each element's order
 * stays the same: bags in the forward, the gradient sum and the squared sum in
 * the backward, element ranges and rows in Adam.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 4    /* TensorFlow's interleaved accumulators over positions */
#define LANES_FROM 16  /* fewer positions are summed in one accumulator */
#define CHUNK 64   /* columns handled per pass, so the accumulators stay in registers/L1 */
#define PARALLEL_WORK 65536  /* element updates below which one thread is faster */
#define PREFETCH 16  /* positions between a wide row's prefetch and its use in the forward */

/* GCC's -O3 makes the scatter several times slower here (measured at the tutorial's shape):
 * its rows are read right after being written, and -O2's code suits that better. */
#if defined(__GNUC__) && !defined(__clang__)
#define SCATTER_OPT __attribute__((optimize("O2")))
#else
#define SCATTER_OPT
#endif

/* Inlined at each call site, so that constant arguments specialize its loops. */
#if defined(__GNUC__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif

/* Ask for the cache lines of n floats at p: the rows of a wide table miss the caches, and
 * the forward would otherwise wait on each miss in turn (measured at D = 128, V = 1M:
 * 52 ms -> 37 ms per forward). */
static inline void prefetch(const float *p, int64_t n) {
#if defined(__GNUC__)
    for (int64_t k = 0; k < n; k += 16) __builtin_prefetch(p + k, 0, 3);
#else
    (void)p;
    (void)n;
#endif
}

/* Whether every id of ids[0:n] names a row of a V-row table. */
static int ids_in_range(const int64_t *ids, int64_t n, int64_t V) {
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) bad |= (uint64_t)ids[i] >= (uint64_t)V;
    return !bad;
}

/* One bag: out = mean over t of weight[bag[t], :] in TensorFlow's CPU order (Eigen's sum
 * over a middle axis): when T >= 16 the first body = T - T mod 4 positions go to four
 * interleaved lanes a_r = sum_{t = r mod 4} e_t (each from 0, t increasing), combined as
 * ((a0 + a1) + a2) + a3; the remaining positions (all of them when T < 16) are then added
 * one at a time.  Divided by T, or with mask by the count of nonzero ids, id 0 then being
 * padding that adds nothing (Embedding(mask_zero=True) + GlobalAveragePooling1D; a bag of
 * padding only gives 0 / 0). */
static void bag_mean_one(const float *restrict weight, const int64_t *restrict bag,
                         float *restrict out, int64_t T, int64_t D, int mask) {
    float acc[LANES][CHUNK];
    float total[CHUNK];
    const int64_t body = T >= LANES_FROM ? T / LANES * LANES : 0;
    int64_t count = T;
    if (mask) {
        count = 0;
        for (int64_t t = 0; t < T; ++t) count += bag[t] != 0;
    }
    const float length = (float)count;
    for (int64_t d0 = 0; d0 < D; d0 += CHUNK) {
        const int64_t dc = D - d0 < CHUNK ? D - d0 : CHUNK;
        memset(acc, 0, sizeof(acc));
        if (dc == 16) { /* the tutorial's width: a constant trip count vectorizes fully */
            for (int64_t t = 0; t < body; ++t) {
                if (mask && bag[t] == 0) continue;
                const float *row = weight + bag[t] * D + d0;
                float *lane = acc[t & (LANES - 1)];
                for (int k = 0; k < 16; ++k) lane[k] += row[k];
            }
        } else {
            for (int64_t t = 0; t < body; ++t) {
                if (t + PREFETCH < body) prefetch(weight + bag[t + PREFETCH] * D + d0, dc);
                if (mask && bag[t] == 0) continue;
                const float *row = weight + bag[t] * D + d0;
                float *lane = acc[t & (LANES - 1)];
                for (int64_t k = 0; k < dc; ++k) lane[k] += row[k];
            }
        }
        for (int64_t k = 0; k < dc; ++k)
            total[k] = ((acc[0][k] + acc[1][k]) + acc[2][k]) + acc[3][k];
        for (int64_t t = body; t < T; ++t) {
            if (mask && bag[t] == 0) continue;
            const float *row = weight + bag[t] * D + d0;
            for (int64_t k = 0; k < dc; ++k) total[k] += row[k];
        }
        for (int64_t k = 0; k < dc; ++k) out[d0 + k] = total[k] / length;
    }
}

/* The forward of B dense bags of T ids (mask: id 0 is padding, see bag_mean_one); returns
 * how many bags hold an id outside the V-row table (those bags are not read and their
 * means are left unwritten). */
int64_t bag_mean_forward(const float *weight, const int64_t *ids, float *out, int64_t B,
                         int64_t T, int64_t D, int64_t V, int64_t mask) {
    int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (B * T * D >= PARALLEL_WORK)
    for (int64_t b = 0; b < B; ++b) {
        if (ids_in_range(ids + b * T, T, V))
            bag_mean_one(weight, ids + b * T, out + b * D, T, D, (int)mask);
        else
            ++bad;
    }
    return bad;
}

/* Ragged bags: bag b is ids[offsets[b] : offsets[b + 1]] (the last ends at N); out[b] is
 * the sum of its rows, from 0 in id order, divided by its length (an empty bag gives 0).
 * Returns the number of bags with an id outside the table, as bag_mean_forward does. */
int64_t ragged_mean_forward(const float *weight, const int64_t *ids, const int64_t *offsets,
                            float *out, int64_t B, int64_t N, int64_t D, int64_t V) {
    int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (N * D >= PARALLEL_WORK)
    for (int64_t b = 0; b < B; ++b) {
        const int64_t start = offsets[b], end = b + 1 < B ? offsets[b + 1] : N;
        const float length = (float)(end - start > 1 ? end - start : 1);
        if (!ids_in_range(ids + start, end - start, V)) {
            ++bad;
            continue;
        }
        float *o = out + b * D;
        for (int64_t k = 0; k < D; ++k) o[k] = 0.0f;
        for (int64_t i = start; i < end; ++i) {
            const float *row = weight + ids[i] * D;
            for (int64_t k = 0; k < D; ++k) o[k] += row[k];
        }
        for (int64_t k = 0; k < D; ++k) o[k] /= length;
    }
    return bad;
}

/* row[k] += g[k]: whole 16-float blocks have a constant trip count, which -O2's cost model
 * vectorizes (a loop over an unknown D stays scalar there, measured 10x slower at D = 64). */
static inline void add_row(float *restrict row, const float *restrict g, int64_t D) {
    int64_t k = 0;
    for (; k + 16 <= D; k += 16)
        for (int j = 0; j < 16; ++j) row[k + j] += g[k + j];
    for (; k < D; ++k) row[k] += g[k];
}

/* row[k] += r[k] * r[k], blocked like add_row. */
static inline void add_square_row(float *restrict row, const float *restrict r, int64_t D) {
    int64_t k = 0;
    for (; k + 16 <= D; k += 16)
        for (int j = 0; j < 16; ++j) row[k + j] += r[k + j] * r[k + j];
    for (; k < D; ++k) row[k] += r[k] * r[k];
}

/* dst[ids[b, t], :] += src[b, :] (or src[b, :] squared, when square is set) for every
 * occurrence, in (b, t) order, like TensorFlow's unsorted_segment_sum over the gather's
 * IndexedSlices; with skip_zero, id 0 (masked padding, whose gradient is 0) is passed over. */
SCATTER_OPT static void scatter_one(const float *restrict src, const int64_t *restrict ids,
                                    float *restrict dst, int64_t B, int64_t T, int64_t D,
                                    int square, int skip_zero) {
    if (D == 16) { /* the tutorial's width: constant trip counts vectorize fully */
        for (int64_t b = 0; b < B; ++b) {
            const float *g = src + b * 16;
            const int64_t *bag = ids + b * T;
            if (square)
                for (int64_t t = 0; t < T; ++t) {
                    if (skip_zero && bag[t] == 0) continue;
                    float *row = dst + bag[t] * 16;
                    for (int k = 0; k < 16; ++k) row[k] += g[k] * g[k];
                }
            else
                for (int64_t t = 0; t < T; ++t) {
                    if (skip_zero && bag[t] == 0) continue;
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
            if (skip_zero && bag[t] == 0) continue;
            if (square)
                add_square_row(dst + bag[t] * D, g, D);
            else
                add_row(dst + bag[t] * D, g, D);
        }
    }
}

/* The backward of B dense bags of T ids: sums[r] = sum of g[b] over the occurrences of id
 * r, and squares[r] = the same sum of g2[b] (of g[b] * g[b] when g2 is NULL; not computed
 * when squares is NULL), both in occurrence order; the two sums run on two threads.  A
 * plain gather (Keras's Embedding) is the case T = 1.  skip_zero passes id 0 over (masked
 * padding). */
void bag_scatter_sums(const float *g, const float *g2, const int64_t *ids, float *sums,
                      float *squares, int64_t B, int64_t T, int64_t D, int64_t skip_zero) {
    const int tasks = squares ? 2 : 1;
    const int skip = (int)skip_zero;
#pragma omp parallel for schedule(static) num_threads(2) if (tasks == 2 && B * T * D >= PARALLEL_WORK)
    for (int task = 0; task < tasks; ++task) {
        if (task == 0)
            scatter_one(g, ids, sums, B, T, D, 0, skip);
        else if (g2)
            scatter_one(g2, ids, squares, B, T, D, 0, skip);
        else
            scatter_one(g, ids, squares, B, T, D, 1, skip);
    }
}

/* Keras Adam on TensorFlow:
 *   m += (g - m) * c1;  v += (g2 - v) * c2;  p -= (m * alpha) / (sqrt(v) + eps)
 * with g2 = g * g when has_sq is 0 (no per-occurrence squares), and g = g2 = 0 when
 * has_g is 0 (a row no occurrence touched: exactly what a zero row of a dense gradient
 * gives).  sqrtf is the correctly rounded IEEE square root, like tf.sqrt.  Called with
 * constant flags, each call site gets its own loop without a branch inside (vectorized). */
ALWAYS_INLINE void adam_elems(float *restrict p, const float *restrict g,
                              const float *restrict g2, float *restrict m, float *restrict v,
                              int64_t n, float alpha, float c1, float c2, float eps,
                              const int has_g, const int has_sq) {
    for (int64_t i = 0; i < n; ++i) {
        const float gi = has_g ? g[i] : 0.0f;
        const float sq = has_g ? (has_sq ? g2[i] : gi * gi) : 0.0f;
        const float mi = m[i] + (gi - m[i]) * c1;
        const float vi = v[i] + (sq - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] - (mi * alpha) / (sqrtf(vi) + eps);
    }
}

#define ADAM_BLOCK 16384  /* elements per parallel task of the dense update */

void adam_update(float *p, const float *g, const float *g2, float *m, float *v, int64_t n,
                 float alpha, float c1, float c2, float eps) {
    const int64_t blocks = (n + ADAM_BLOCK - 1) / ADAM_BLOCK;
#pragma omp parallel for schedule(static) if (n >= 4 * PARALLEL_WORK)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t i = b * ADAM_BLOCK, len = n - i < ADAM_BLOCK ? n - i : ADAM_BLOCK;
        if (g2)
            adam_elems(p + i, g + i, g2 + i, m + i, v + i, len, alpha, c1, c2, eps, 1, 1);
        else
            adam_elems(p + i, g + i, NULL, m + i, v + i, len, alpha, c1, c2, eps, 1, 0);
    }
}

/* The rows of a V-row table that ids[0:N] name, in increasing order, written to rows[]
 * (room for min(N, V) + 1); local[i] is the position of ids[i] in rows[].  slot holds V
 * zeros on entry (scratch).  With pad_first row 0 is listed first whether it occurs or not
 * (masked padding then keeps local id 0).  Returns the number of rows listed. */
int64_t touched_rows(const int64_t *ids, int64_t N, int64_t V, int64_t pad_first,
                     int64_t *slot, int64_t *rows, int64_t *local) {
    for (int64_t i = 0; i < N; ++i) slot[ids[i]] = 1;
    int64_t count = 0;
    if (pad_first) slot[0] = 1;
    for (int64_t r = 0; r < V; ++r)
        if (slot[r]) {
            slot[r] = count;
            rows[count++] = r;
        }
    for (int64_t i = 0; i < N; ++i) local[i] = slot[ids[i]];
    return count;
}

/* The first k in [0, R) with rows[k] >= r (R when none): rows is increasing. */
static int64_t lower_bound(const int64_t *rows, int64_t R, int64_t r) {
    int64_t lo = 0, hi = R;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (rows[mid] < r) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* Table row `at / D` from its per-row sums g[k] and g2[k] (g[k] squared when g2 is NULL). */
ALWAYS_INLINE void adam_touched(float *p, const float *g, const float *g2, float *m, float *v,
                                int64_t at, int64_t k, int64_t D, float alpha, float c1,
                                float c2, float eps) {
    if (g2)
        adam_elems(p + at, g + k * D, g2 + k * D, m + at, v + at, D, alpha, c1, c2, eps, 1, 1);
    else
        adam_elems(p + at, g + k * D, NULL, m + at, v + at, D, alpha, c1, c2, eps, 1, 0);
}

#define SWEEP_ROWS 1024  /* table rows per parallel task of the sweep */

/* One task of adam_rows' sweep: rows [first, end) of the table, every row updated, the
 * untouched ones with a zero gradient (runs of them in one loop).  A constant D (the
 * tutorial's 16) gives loops of constant trip count. */
ALWAYS_INLINE void sweep_rows(float *p, const int64_t *rows, const float *g, const float *g2,
                              float *m, float *v, int64_t R, int64_t first, int64_t end,
                              int64_t D, float alpha, float c1, float c2, float eps) {
    int64_t r = first, k = lower_bound(rows, R, first);
    while (r < end) {
        const int64_t next = k < R && rows[k] < end ? rows[k] : end;  /* untouched run */
        adam_elems(p + r * D, NULL, NULL, m + r * D, v + r * D, (next - r) * D, alpha, c1, c2,
                   eps, 0, 0);
        if (next == end) break;
        adam_touched(p, g, g2, m, v, next * D, k, D, alpha, c1, c2, eps);
        r = next + 1;
        ++k;
    }
}

/* Keras Adam from per-row sums: g[k] and g2[k] (g[k] * g[k] when g2 is NULL) are the
 * gradient and squared sums of table row rows[k], rows increasing.  every_row: Keras's
 * dense update, every row of the V-row table decays its moments and moves, the untouched
 * ones with a zero gradient, element for element what adam_update does with the dense
 * gradient (never built here); else only the listed rows are updated (lazy Adam). */
void adam_rows(float *p, const int64_t *rows, const float *g, const float *g2, float *m,
               float *v, int64_t R, int64_t V, int64_t D, float alpha, float c1, float c2,
               float eps, int64_t every_row) {
    if (!every_row) {
#pragma omp parallel for schedule(static) if (R * D >= 4 * PARALLEL_WORK)
        for (int64_t k = 0; k < R; ++k)
            adam_touched(p, g, g2, m, v, rows[k] * D, k, D, alpha, c1, c2, eps);
        return;
    }
    const int64_t blocks = (V + SWEEP_ROWS - 1) / SWEEP_ROWS;
#pragma omp parallel for schedule(static) if (V * D >= 4 * PARALLEL_WORK)
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t first = b * SWEEP_ROWS, end = first + SWEEP_ROWS < V ? first + SWEEP_ROWS : V;
        if (D == 16)
            sweep_rows(p, rows, g, g2, m, v, R, first, end, 16, alpha, c1, c2, eps);
        else
            sweep_rows(p, rows, g, g2, m, v, R, first, end, D, alpha, c1, c2, eps);
    }
}

/* The same sums for tables too large for the caches, grouped by row: a stable counting sort
 * of the N occurrences by id, then each row of sums and squares is zeroed and accumulated
 * in one place, in increasing occurrence index, so every element sees exactly the additions
 * of the scatter above in the same order.  Occurrence i reads row i / per of src (per = T
 * for bag means, 1 for plain gathers) and of src2, or src * src when src2 is NULL; squares
 * is not computed when it is NULL.  Rows are written once and every row of the (V, D)
 * outputs is written, so they need no zero fill.  skip_zero leaves the occurrences of id 0
 * (masked padding) out: row 0 is written as zeros.
 * Returns 0, or -1 when the working memory could not be allocated (nothing written). */
int64_t grouped_scatter_sums(const float *src, const float *src2, const int64_t *ids,
                             float *sums, float *squares, int64_t N, int64_t per, int64_t V,
                             int64_t D, int64_t skip_zero) {
    int64_t *start = calloc((size_t)V + 1, sizeof(int64_t));
    int64_t *cursor = malloc(((size_t)V + 1) * sizeof(int64_t));
    int64_t *order = malloc(((size_t)N + 1) * sizeof(int64_t));
    if (!start || !cursor || !order) {
        free(start);
        free(cursor);
        free(order);
        return -1;
    }
    for (int64_t i = 0; i < N; ++i)
        if (!(skip_zero && ids[i] == 0)) ++start[ids[i] + 1];
    for (int64_t r = 0; r < V; ++r) start[r + 1] += start[r];
    memcpy(cursor, start, ((size_t)V + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < N; ++i)
        if (!(skip_zero && ids[i] == 0)) order[cursor[ids[i]]++] = i / per;
#pragma omp parallel for schedule(dynamic, 256) if (N * D >= PARALLEL_WORK)
    for (int64_t r = 0; r < V; ++r) {
        float *sum = sums + r * D;
        memset(sum, 0, (size_t)D * sizeof(float));
        if (!squares) {
            for (int64_t k = start[r]; k < start[r + 1]; ++k) add_row(sum, src + order[k] * D, D);
            continue;
        }
        float *square = squares + r * D;
        memset(square, 0, (size_t)D * sizeof(float));
        for (int64_t k = start[r]; k < start[r + 1]; ++k) {
            const float *g = src + order[k] * D;
            add_row(sum, g, D);
            if (src2)
                add_row(square, src2 + order[k] * D, D);
            else
                add_square_row(square, g, D);
        }
    }
    free(start);
    free(cursor);
    free(order);
    return 0;
}
