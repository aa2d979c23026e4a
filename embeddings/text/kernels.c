/* Text kernels of the vectorizer: TensorFlow's byte-level standardizations, whitespace
 * token counting and vocabulary lookup (PARITY.md sections 1-5).
 *
 * Compiled on first use by embeddings/native.py (any C compiler, no Python or torch
 * headers) and called through ctypes from embeddings/text/native.py; without a compiler
 * the vectorizer falls back to its Arrow formulation, which gives the same ids.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* TensorFlow's standardizations of n packed texts, byte by byte (PARITY.md sections 1-2):
 * mode & 1: lowercase A-Z only; mode & 2: replace "<br />" (matched after lowercasing, left
 * to right, not recursively) with a space; mode & 4: delete the 32 ASCII punctuation bytes.
 * Text i is data[offsets[i]:offsets[i+1]]; the results go to out with out_offsets (out needs
 * offsets[n] bytes: no text grows). */
static int is_punct(uint8_t c) {
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
}

static uint8_t lower(uint8_t c, int mode) {
    return (mode & 1) && c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* The next output byte of a standardized text, or -1 for a deleted byte.  j is advanced. */
static int next_byte(const uint8_t *data, int64_t *j, int64_t end, int mode) {
    static const uint8_t br[6] = {'<', 'b', 'r', ' ', '/', '>'};
    if ((mode & 2) && data[*j] == '<' && end - *j >= 6) {
        int match = 1;
        for (int k = 1; k < 6 && match; ++k) match = lower(data[*j + k], mode) == br[k];
        if (match) {
            *j += 6;
            return ' ';
        }
    }
    const uint8_t c = lower(data[(*j)++], mode);
    return (mode & 4) && is_punct(c) ? -1 : c;
}

void standardize(const uint8_t *data, const int64_t *offsets, int64_t n, uint8_t *out,
                 int64_t *out_offsets, int mode) {
    int64_t w = 0;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t end = offsets[i + 1];
        for (int64_t j = offsets[i]; j < end;) {
            const int c = next_byte(data, &j, end, mode);
            if (c >= 0) out[w++] = (uint8_t)c;
        }
        out_offsets[i + 1] = w;
    }
}

/* ---- Counting tokens for TextVectorization.adapt ---------------------------------------
 * Tokens are the runs of bytes between the six ASCII whitespace bytes (Python's
 * bytes.split()), within each text.  An open-addressing table of capacity cap (a power of
 * two) holds each distinct token as (start, length, count); the caller supplies the arrays. */
static int is_space(uint8_t c) { return c == ' ' || (c >= 9 && c <= 13); }

static uint64_t hash_bytes(const uint8_t *p, int64_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int64_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* Returns the number of distinct tokens, or -1 when the table passes 70 % load (the caller
 * retries with a larger one). slot_start must come filled with -1. */
int64_t count_tokens(const uint8_t *data, const int64_t *offsets, int64_t n,
                     int64_t *slot_start, int64_t *slot_len, int64_t *slot_count, int64_t cap) {
    const uint64_t mask = (uint64_t)cap - 1;
    int64_t distinct = 0;
    for (int64_t i = 0; i < n; ++i) {
        int64_t j = offsets[i];
        const int64_t end = offsets[i + 1];
        while (j < end) {
            while (j < end && is_space(data[j])) ++j;
            const int64_t s = j;
            while (j < end && !is_space(data[j])) ++j;
            const int64_t len = j - s;
            if (len == 0) continue;
            uint64_t h = hash_bytes(data + s, len) & mask;
            for (;;) {
                const int64_t at = slot_start[h];
                if (at < 0) {
                    if (10 * (distinct + 1) > 7 * cap) return -1;
                    slot_start[h] = s;
                    slot_len[h] = len;
                    slot_count[h] = 1;
                    ++distinct;
                    break;
                }
                if (slot_len[h] == len && memcmp(data + at, data + s, (size_t)len) == 0) {
                    ++slot_count[h];
                    break;
                }
                h = (h + 1) & mask;
            }
        }
    }
    return distinct;
}

/* ---- Encoding texts for TextVectorization.__call__ --------------------------------------
 * A vocabulary table (open addressing, capacity cap, a power of two) maps token bytes to
 * ids; encode() standardizes each text on the fly, splits it like bytes.split() and writes
 * the ids of its first L tokens (1 when unknown) into out[i, :], which comes zeroed.  Only
 * as much of a text is read as its first L tokens need. */
static int64_t find_slot(const uint8_t *blob, const int64_t *vstart, const int64_t *vlen,
                         const int64_t *slot_id, int64_t cap, const uint8_t *tok, int64_t len) {
    uint64_t h = hash_bytes(tok, len) & ((uint64_t)cap - 1);
    while (slot_id[h] >= 0) {
        const int64_t id = slot_id[h];
        if (vlen[id] == len && memcmp(blob + vstart[id], tok, (size_t)len) == 0) return (int64_t)h;
        h = (h + 1) & ((uint64_t)cap - 1);
    }
    return (int64_t)h;
}

/* Token id of the vocabulary's tokens [0, n) = blob[vstart[id]:vstart[id]+vlen[id]]; the
 * first occurrence of a repeated token wins.  slot_id comes filled with -1. */
void build_vocab_table(const uint8_t *blob, const int64_t *vstart, const int64_t *vlen, int64_t n,
                       int64_t *slot_id, int64_t cap) {
    for (int64_t id = 0; id < n; ++id) {
        if (vlen[id] == 0) continue; /* '' is never a token */
        const int64_t h = find_slot(blob, vstart, vlen, slot_id, cap, blob + vstart[id], vlen[id]);
        if (slot_id[h] < 0) slot_id[h] = id;
    }
}

static void emit(const uint8_t *blob, const int64_t *vstart, const int64_t *vlen,
                 const int64_t *slot_id, int64_t cap, const uint8_t *tok, int64_t len,
                 int64_t *row, int64_t *k) {
    const int64_t h = find_slot(blob, vstart, vlen, slot_id, cap, tok, len);
    row[(*k)++] = slot_id[h] >= 0 ? slot_id[h] : 1;
}

void encode(const uint8_t *data, const int64_t *offsets, int64_t n, int mode,
            const uint8_t *blob, const int64_t *vstart, const int64_t *vlen,
            const int64_t *slot_id, int64_t cap, int64_t *out, int64_t L, uint8_t *scratch) {
    for (int64_t i = 0; i < n; ++i) {
        int64_t *row = out + i * L;
        int64_t k = 0, len = 0;
        const int64_t end = offsets[i + 1];
        for (int64_t j = offsets[i]; j < end && k < L;) {
            const int c = next_byte(data, &j, end, mode);
            if (c < 0) continue;
            if (is_space((uint8_t)c)) {
                if (len) emit(blob, vstart, vlen, slot_id, cap, scratch, len, row, &k);
                len = 0;
            } else {
                scratch[len++] = (uint8_t)c;
            }
        }
        if (len && k < L) emit(blob, vstart, vlen, slot_id, cap, scratch, len, row, &k);
    }
}
