/* Text kernels of the vectorizer: TensorFlow's byte-level standardizations, whitespace
 * tokens and n-grams, their counting (tokens and documents) and vocabulary lookup
 * (PARITY.md sections 1-5).
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

/* ---- Tokens and n-grams -------------------------------------------------------------------
 * Tokens are the runs of bytes between the six ASCII whitespace bytes (Python's
 * bytes.split()) of a standardized text.  tokenize() standardizes text [start, end) into
 * scratch and records each token's start and length there; its n-grams are made width by
 * width (widths[0..nw), in that order), left to right, each its tokens joined by the byte
 * sep: tf.strings.ngrams(tf.strings.split(x), widths, separator=" ") when sep is a space. */
static int is_space(uint8_t c) { return c == ' ' || (c >= 9 && c <= 13); }

#define FNV_BASIS 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t hash_bytes(const uint8_t *p, int64_t n) {
    uint64_t h = FNV_BASIS; /* FNV-1a */
    for (int64_t i = 0; i < n; ++i) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* At most max_tokens tokens are read (max_tokens < 0: all); returns how many.  tok_hash gets
 * each token's hash_bytes(), computed on the way. */
static int64_t tokenize(const uint8_t *data, int64_t start, int64_t end, int mode,
                        int64_t max_tokens, uint8_t *scratch, int64_t *tok_start,
                        int64_t *tok_len, uint64_t *tok_hash) {
    int64_t len = 0, k = 0;
    int in_token = 0;
    uint64_t h = 0;
    for (int64_t j = start; j < end;) {
        const int c = next_byte(data, &j, end, mode);
        if (c < 0) continue; /* a deleted byte joins its neighbours */
        if (is_space((uint8_t)c)) {
            in_token = 0;
            continue;
        }
        if (!in_token) {
            if (k == max_tokens) break;
            if (k) tok_hash[k - 1] = h;
            h = FNV_BASIS;
            tok_start[k] = len;
            tok_len[k++] = 0;
            in_token = 1;
        }
        h = (h ^ (uint8_t)c) * FNV_PRIME;
        scratch[len++] = (uint8_t)c;
        ++tok_len[k - 1];
    }
    if (k) tok_hash[k - 1] = h;
    return k;
}

/* The n-gram of width w at token p: a token is read in place (its hash is known); wider
 * ones are joined by the byte sep (Keras: a space) into buf and hashed.  *key points at its
 * bytes and *hash gets its hash_bytes(); returns its length. */
static int64_t join(const uint8_t *scratch, const int64_t *tok_start, const int64_t *tok_len,
                    const uint64_t *tok_hash, int64_t p, int64_t w, uint8_t sep, uint8_t *buf,
                    const uint8_t **key, uint64_t *hash) {
    if (w == 1) {
        *key = scratch + tok_start[p];
        *hash = tok_hash[p];
        return tok_len[p];
    }
    *key = buf;
    int64_t n = 0;
    for (int64_t q = 0; q < w; ++q) {
        if (q) buf[n++] = sep;
        memcpy(buf + n, scratch + tok_start[p + q], (size_t)tok_len[p + q]);
        n += tok_len[p + q];
    }
    *hash = hash_bytes(buf, n);
    return n;
}

/* ---- Counting n-grams for TextVectorization.adapt -----------------------------------------
 * Every n-gram of the n texts whose hash falls in partition part of parts (threads count
 * disjoint partitions of the same texts, so their tables need no merging) is counted in an
 * open-addressing table of cap slots (a power of two), each slot six int64 in a row, so that a probe touches one cache line: the
 * n-gram's start and length in arena (where its bytes are copied once), its occurrences,
 * the texts holding it, the last text that counted it, and its hash.  Empty slots have
 * start -1.  Scratch buffers hold one standardized text.  state holds where to resume (text,
 * width index, position) and the distinct n-grams and arena bytes so far: it starts zeroed.
 * Returns 0 when every text is counted, -1 when the table reaches 70 % load, -2 when the
 * arena is full; the caller grows it (rehash() for the table) and calls again with state. */
enum { S_START, S_LEN, S_COUNT, S_DOCS, S_LAST, S_HASH, SLOT };

int64_t count_ngrams(const uint8_t *data, const int64_t *offsets, int64_t n, int mode,
                     const int64_t *widths, int64_t nw, int sep, int64_t part, int64_t parts,
                     uint8_t *arena, int64_t arena_cap, int64_t *slots, int64_t cap,
                     uint8_t *scratch, uint8_t *buf, int64_t *tok_start, int64_t *tok_len,
                     uint64_t *tok_hash, int64_t *state) {
    const uint64_t mask = (uint64_t)cap - 1;
    int64_t distinct = state[3], used = state[4];
    for (int64_t i = state[0]; i < n; ++i) {
        const int64_t k = tokenize(data, offsets[i], offsets[i + 1], mode, -1, scratch,
                                   tok_start, tok_len, tok_hash);
        const int resumed = i == state[0];
        for (int64_t wi = resumed ? state[1] : 0; wi < nw; ++wi) {
            const int64_t w = widths[wi];
            for (int64_t p = resumed && wi == state[1] ? state[2] : 0; p + w <= k; ++p) {
                const uint8_t *key;
                uint64_t hash;
                const int64_t len = join(scratch, tok_start, tok_len, tok_hash, p, w,
                                         (uint8_t)sep, buf, &key, &hash);
                if ((int64_t)((hash >> 48) % (uint64_t)parts) != part) continue;
                for (uint64_t h = hash & mask;; h = (h + 1) & mask) {
                    int64_t *slot = slots + h * SLOT;
                    if (slot[S_START] < 0) {
                        const int64_t full = 10 * (distinct + 1) > 7 * cap ? -1 :
                                             used + len > arena_cap ? -2 : 0;
                        if (full) {
                            state[0] = i, state[1] = wi, state[2] = p;
                            state[3] = distinct, state[4] = used;
                            return full;
                        }
                        memcpy(arena + used, key, (size_t)len);
                        slot[S_START] = used;
                        slot[S_LEN] = len;
                        slot[S_COUNT] = slot[S_DOCS] = 1;
                        slot[S_LAST] = i;
                        slot[S_HASH] = (int64_t)hash;
                        used += len;
                        ++distinct;
                        break;
                    }
                    if (slot[S_HASH] == (int64_t)hash && slot[S_LEN] == len &&
                        memcmp(arena + slot[S_START], key, (size_t)len) == 0) {
                        ++slot[S_COUNT];
                        if (slot[S_LAST] != i) {
                            ++slot[S_DOCS];
                            slot[S_LAST] = i;
                        }
                        break;
                    }
                }
            }
        }
        state[0] = i + 1, state[1] = 0, state[2] = 0; /* a resumed text is done */
    }
    state[3] = distinct, state[4] = used;
    return 0;
}

/* Move count_ngrams' slots (from, from_cap of them) into the empty table to (to_cap). */
void rehash(const int64_t *from, int64_t from_cap, int64_t *to, int64_t to_cap) {
    const uint64_t mask = (uint64_t)to_cap - 1;
    for (int64_t s = 0; s < from_cap; ++s) {
        const int64_t *slot = from + s * SLOT;
        if (slot[S_START] < 0) continue;
        uint64_t h = (uint64_t)slot[S_HASH] & mask;
        while (to[h * SLOT + S_START] >= 0) h = (h + 1) & mask;
        memcpy(to + h * SLOT, slot, SLOT * sizeof(int64_t));
    }
}

/* ---- Encoding texts for TextVectorization.__call__ --------------------------------------
 * A vocabulary table (open addressing, capacity cap, a power of two) maps token bytes to
 * ids; encode() standardizes each text on the fly, splits it like bytes.split() and writes
 * the ids of its first L tokens (1 when unknown) into out[i, :], which comes zeroed.  Only
 * as much of a text is read as its first L tokens need. */
static int64_t find_hashed(const uint8_t *blob, const int64_t *vstart, const int64_t *vlen,
                           const int64_t *slot_id, int64_t cap, const uint8_t *tok, int64_t len,
                           uint64_t hash) {
    uint64_t h = hash & ((uint64_t)cap - 1);
    while (slot_id[h] >= 0) {
        const int64_t id = slot_id[h];
        if (vlen[id] == len && memcmp(blob + vstart[id], tok, (size_t)len) == 0) return (int64_t)h;
        h = (h + 1) & ((uint64_t)cap - 1);
    }
    return (int64_t)h;
}

static int64_t find_slot(const uint8_t *blob, const int64_t *vstart, const int64_t *vlen,
                         const int64_t *slot_id, int64_t cap, const uint8_t *tok, int64_t len) {
    return find_hashed(blob, vstart, vlen, slot_id, cap, tok, len, hash_bytes(tok, len));
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

/* The ids of every text's n-grams (widths[0..nw), width by width, left to right), at most
 * limit per text (limit < 0: all), into out_ids; text i's are out_ids[out_offsets[i]:
 * out_offsets[i+1]].  Unknown n-grams get the id unknown.  out_ids must hold them all.  With
 * a limit only the first limit + max(widths) - 1 tokens are read: a width never emits more
 * than limit n-grams, and those start before token limit. */
void encode_ngrams(const uint8_t *data, const int64_t *offsets, int64_t n, int mode,
                   const int64_t *widths, int64_t nw, int sep, const uint8_t *blob,
                   const int64_t *vstart, const int64_t *vlen, const int64_t *slot_id,
                   int64_t cap, int64_t unknown, int64_t limit, int64_t *out_ids,
                   int64_t *out_offsets, uint8_t *scratch, uint8_t *buf, int64_t *tok_start,
                   int64_t *tok_len, uint64_t *tok_hash) {
    int64_t t = 0, widest = 1;
    for (int64_t wi = 0; wi < nw; ++wi) widest = widths[wi] > widest ? widths[wi] : widest;
    out_offsets[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t k = tokenize(data, offsets[i], offsets[i + 1], mode,
                                   limit < 0 ? -1 : limit + widest - 1, scratch, tok_start,
                                   tok_len, tok_hash);
        int64_t emitted = 0;
        for (int64_t wi = 0; wi < nw && (limit < 0 || emitted < limit); ++wi) {
            const int64_t w = widths[wi];
            for (int64_t p = 0; p + w <= k && (limit < 0 || emitted < limit); ++p) {
                const uint8_t *key;
                uint64_t hash;
                const int64_t len = join(scratch, tok_start, tok_len, tok_hash, p, w,
                                         (uint8_t)sep, buf, &key, &hash);
                const int64_t h = find_hashed(blob, vstart, vlen, slot_id, cap, key, len, hash);
                out_ids[t++] = slot_id[h] >= 0 ? slot_id[h] : unknown;
                ++emitted;
            }
        }
        out_offsets[i + 1] = t;
    }
}

/* multi_hot, count and tf_idf outputs straight from the texts: row i of out (depth cells)
 * counts the ids of text i's n-grams (unknown ones as the id unknown).  kind 0: int64
 * counts; 1: int64 ones (multi-hot); 2: float32 counts, then each counted cell times
 * idf[id] (TensorFlow multiplies every cell; the caller does that itself when a weight is
 * not finite, since then 0 * weight is not 0).  out comes zeroed; touched holds a text's
 * distinct ids. */
void vectorize_ngrams(const uint8_t *data, const int64_t *offsets, int64_t n, int mode,
                      const int64_t *widths, int64_t nw, int sep, const uint8_t *blob,
                      const int64_t *vstart, const int64_t *vlen, const int64_t *slot_id,
                      int64_t cap, int64_t unknown, int kind, int64_t depth, void *out,
                      const float *idf, int64_t *touched, uint8_t *scratch, uint8_t *buf,
                      int64_t *tok_start, int64_t *tok_len, uint64_t *tok_hash) {
    for (int64_t i = 0; i < n; ++i) {
        const int64_t k = tokenize(data, offsets[i], offsets[i + 1], mode, -1, scratch,
                                   tok_start, tok_len, tok_hash);
        int64_t *row = (int64_t *)out + i * depth;
        float *frow = (float *)out + i * depth;
        int64_t distinct = 0;
        for (int64_t wi = 0; wi < nw; ++wi) {
            const int64_t w = widths[wi];
            for (int64_t p = 0; p + w <= k; ++p) {
                const uint8_t *key;
                uint64_t hash;
                const int64_t len = join(scratch, tok_start, tok_len, tok_hash, p, w,
                                         (uint8_t)sep, buf, &key, &hash);
                const int64_t h = find_hashed(blob, vstart, vlen, slot_id, cap, key, len, hash);
                const int64_t id = slot_id[h] >= 0 ? slot_id[h] : unknown;
                if (kind == 0) {
                    ++row[id];
                } else if (kind == 1) {
                    row[id] = 1;
                } else {
                    if (frow[id] == 0.0f) touched[distinct++] = id;
                    frow[id] += 1.0f;
                }
            }
        }
        if (kind == 2 && idf)
            for (int64_t t = 0; t < distinct; ++t) frow[touched[t]] *= idf[touched[t]];
    }
}
