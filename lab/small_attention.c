/* Causal (and sliding-window) attention for small heads, fp32, forward and backward: lab/small_attention.py.
 *
 * One query row at a time against the keys it may see: the scores of that row, their softmax and the weighted
 * sum of values, with keys and values held transposed (head_dim rows of seq floats) so every loop runs over
 * keys, LANES at a time. The backward recomputes the probabilities from the saved log-sum-exp, as flash
 * attention does, in one pass over the keys per query. Tensors are addressed through (batch, head, seq) strides with head_dim contiguous,
 * so q, k, v come straight from the split of the fused projection and the output is written in the layout the
 * next projection reads. Heads bh_start..bh_end-1 (bh = batch * n_head + head), so callers can split the work.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* GCC/Clang vector extensions: plain C that compiles to AVX-512, AVX2, NEON or scalar code as the target has. */
#if defined(__AVX512F__)
#define LANES 16
#else
#define LANES 8
#endif
typedef float vf __attribute__((vector_size(LANES * 4)));
typedef int vi __attribute__((vector_size(LANES * 4)));
typedef float vf_unaligned __attribute__((vector_size(LANES * 4), aligned(4)));
#define MAX_HEAD 16
#define GROUP 8 /* head dims per pass over the keys: more accumulators than this spill out of registers */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE vf load(const float *p) { return *(const vf_unaligned *)p; }
ALWAYS_INLINE void store(float *p, vf x) { *(vf_unaligned *)p = x; }
ALWAYS_INLINE vf splat(float x) { return (vf){0} + x; }
ALWAYS_INLINE vf blend(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); } /* mask ? a : b */
ALWAYS_INLINE float sum_lanes(vf x) {
    float total = 0.0f;
    for (int l = 0; l < LANES; l++) total += x[l];
    return total;
}
ALWAYS_INLINE float max_lanes(vf x) {
    float most = x[0];
    for (int l = 1; l < LANES; l++) most = x[l] > most ? x[l] : most;
    return most;
}

/* exp(x) for x <= 0 (lanes that are later masked may hold anything): 2^n exp(r), |r| <= ln2/2, by a degree-7
 * Taylor polynomial (relative error ~1e-8, below float's). */
ALWAYS_INLINE vf exp_nonpositive(vf x) {
    x = blend(x < -87.0f, splat(-87.0f), x);
    vi n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, vi); /* rounds to nearest for x <= 0 */
    vf nf = __builtin_convertvector(n, vf);
    vf r = x - nf * 0.693359375f + nf * 2.12194440e-4f; /* ln2 in two parts (Cephes) */
    vf p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * (vf)((n + 127) << 23);
}

typedef struct { long batch, head, seq; } Strides;

ALWAYS_INLINE long offset(Strides s, int n_head, long bh, long t) {
    return (bh / n_head) * s.batch + (bh % n_head) * s.head + t * s.seq;
}

/* kt[d * ld + t] = k[t, d], and vt from v: the keys and values of head bh, transposed, rows padded to
 * ld = seq + LANES (the padding stays zero). */
static void transpose_head(const float *k, const float *v, const Strides *s, int n_head, long bh, int seq,
                           int head_dim, float *kt, float *vt) {
    const int ld = seq + LANES;
    for (int t = 0; t < seq; t++) {
        const float *kr = k + offset(s[1], n_head, bh, t), *vr = v + offset(s[2], n_head, bh, t);
        for (int d = 0; d < head_dim; d++) {
            kt[d * ld + t] = kr[d];
            vt[d * ld + t] = vr[d];
        }
    }
}

ALWAYS_INLINE vi lane_numbers(void) {
    vi lane;
    for (int l = 0; l < LANES; l++) lane[l] = l;
    return lane;
}

ALWAYS_INLINE int first_key(int i, int window) { return i - window + 1 > 0 ? i - window + 1 : 0; }

/* The loops run over LANES keys at a time with head_dim a compile-time constant (see the switches below), so
 * the loops over d unroll. Lanes past the query (the last step's tail) are masked to probability 0; they read
 * keys after the query or the zero padding, and add exact zeros to the gradients. */
ALWAYS_INLINE void forward_heads(int bh_start, int bh_end, int n_head, int seq, const int head_dim, int window,
                                 float scale, const float *q, const float *k, const float *v, float *out,
                                 float *lse, const Strides *s, float *kt, float *vt, float *p) {
    const int ld = seq + LANES;
    const vi lane = lane_numbers();
    for (long bh = bh_start; bh < bh_end; bh++) {
        transpose_head(k, v, s, n_head, bh, seq, head_dim, kt, vt);
        for (int i = 0; i < seq; i++) {
            const int first = first_key(i, window);
            const float *qi = q + offset(s[0], n_head, bh, i);
            float qd[MAX_HEAD];
            for (int d = 0; d < head_dim; d++) qd[d] = qi[d] * scale;
            vf most = splat(-1e30f);
            for (int j = first; j <= i; j += LANES) {
                vf score = splat(0.0f);
                for (int d = 0; d < head_dim; d++) score += qd[d] * load(kt + d * ld + j);
                score = blend(lane + j <= i, score, splat(-1e30f));
                store(p + (j - first), score);
                most = blend(score > most, score, most);
            }
            const float m = max_lanes(most);
            vf total = splat(0.0f);
            for (int j = first; j <= i; j += LANES) {
                const vf e = (vf)((vi)exp_nonpositive(load(p + (j - first)) - m) & (lane + j <= i));
                store(p + (j - first), e);
                total += e;
            }
            const float row_total = sum_lanes(total);
            float *o = out + offset(s[3], n_head, bh, i);
            for (int d0 = 0; d0 < head_dim; d0 += GROUP) { /* GROUP accumulators at a time stay in registers */
                const int dims = head_dim - d0 < GROUP ? head_dim - d0 : GROUP;
                vf acc[GROUP];
                for (int d = 0; d < dims; d++) acc[d] = splat(0.0f);
                for (int j = first; j <= i; j += LANES) {
                    const vf e = load(p + (j - first));
                    for (int d = 0; d < dims; d++) acc[d] += e * load(vt + (d0 + d) * ld + j);
                }
                for (int d = 0; d < dims; d++) o[d0 + d] = sum_lanes(acc[d]) / row_total;
            }
            lse[bh * seq + i] = m + logf(row_total);
        }
    }
}

ALWAYS_INLINE void backward_heads(int bh_start, int bh_end, int n_head, int seq, const int head_dim, int window,
                                  float scale, const float *q, const float *k, const float *v, const float *out,
                                  const float *grad_out, const float *lse, float *grad_q, float *grad_k,
                                  float *grad_v, const Strides *s, float *kt, float *vt, float *gkt, float *gvt,
                                  float *p, float *gs) {
    const int ld = seq + LANES;
    const vi lane = lane_numbers();
    for (long bh = bh_start; bh < bh_end; bh++) {
        transpose_head(k, v, s, n_head, bh, seq, head_dim, kt, vt);
        memset(gkt, 0, sizeof(float) * head_dim * ld);
        memset(gvt, 0, sizeof(float) * head_dim * ld);
        for (int i = 0; i < seq; i++) {
            const int first = first_key(i, window);
            const float *qi = q + offset(s[0], n_head, bh, i), *oi = out + offset(s[3], n_head, bh, i);
            const float *goi = grad_out + offset(s[4], n_head, bh, i), row_lse = lse[bh * seq + i];
            float qd[MAX_HEAD], god[MAX_HEAD], delta = 0.0f;
            for (int d = 0; d < head_dim; d++) {
                qd[d] = qi[d] * scale;
                god[d] = goi[d];
                delta += goi[d] * oi[d]; /* sum_j p_j (grad_out . v_j) = grad_out . out */
            }
            for (int j = first; j <= i; j += LANES) {
                vf score = splat(0.0f), grad_p = splat(0.0f);
                for (int d = 0; d < head_dim; d++) {
                    score += qd[d] * load(kt + d * ld + j);
                    grad_p += god[d] * load(vt + d * ld + j);
                }
                const vf prob = (vf)((vi)exp_nonpositive(score - row_lse) & (lane + j <= i));
                store(p + (j - first), prob);
                store(gs + (j - first), prob * (grad_p - delta)); /* the gradient of the scores */
            }
            float *gqi = grad_q + offset(s[5], n_head, bh, i);
            for (int d0 = 0; d0 < head_dim; d0 += GROUP) { /* GROUP accumulators at a time stay in registers */
                const int dims = head_dim - d0 < GROUP ? head_dim - d0 : GROUP;
                vf acc[GROUP];
                for (int d = 0; d < dims; d++) acc[d] = splat(0.0f);
                for (int j = first; j <= i; j += LANES) {
                    const vf prob = load(p + (j - first)), grad_score = load(gs + (j - first));
                    for (int d = 0; d < dims; d++) {
                        const int row = (d0 + d) * ld + j;
                        acc[d] += grad_score * load(kt + row);
                        store(gkt + row, load(gkt + row) + qd[d0 + d] * grad_score);
                        store(gvt + row, load(gvt + row) + god[d0 + d] * prob);
                    }
                }
                for (int d = 0; d < dims; d++) gqi[d0 + d] = sum_lanes(acc[d]) * scale;
            }
        }
        for (int t = 0; t < seq; t++) {
            float *gk = grad_k + offset(s[6], n_head, bh, t), *gv = grad_v + offset(s[7], n_head, bh, t);
            for (int d = 0; d < head_dim; d++) {
                gk[d] = gkt[d * ld + t];
                gv[d] = gvt[d * ld + t];
            }
        }
    }
}

static void read_strides(const long *strides, int count, Strides *s) {
    for (int t = 0; t < count; t++) s[t] = (Strides){strides[3 * t], strides[3 * t + 1], strides[3 * t + 2]};
}

/* strides: q, k, v, out (batch, head, seq each). out: (batch, head, seq, head_dim); lse: (batch * head, seq).
 * Returns 0, -1 for a head size above MAX_HEAD, -2 when out of memory. */
int attention_forward(int bh_start, int bh_end, int n_head, int seq, int head_dim, int window, float scale,
                      const float *q, const float *k, const float *v, float *out, float *lse, const long *strides) {
    Strides s[4];
    read_strides(strides, 4, s);
    const size_t block = (size_t)(seq + LANES) * head_dim;
    float *kt = calloc(2 * block + seq + LANES, sizeof(float)), *vt = kt + block, *p = vt + block;
    if (kt == NULL) return -2;
#define FORWARD(D) case D: forward_heads(bh_start, bh_end, n_head, seq, D, window, scale, q, k, v, out, lse, s, \
                                         kt, vt, p); break;
    switch (head_dim) {
        FORWARD(1) FORWARD(2) FORWARD(3) FORWARD(4) FORWARD(5) FORWARD(6) FORWARD(7) FORWARD(8) FORWARD(16)
        default: free(kt); return -1;
    }
    free(kt);
    return 0;
}

/* strides: q, k, v, out, grad_out, grad_q, grad_k, grad_v. Returns 0, -1 for a head size above MAX_HEAD, -2
 * when out of memory. */
int attention_backward(int bh_start, int bh_end, int n_head, int seq, int head_dim, int window, float scale,
                       const float *q, const float *k, const float *v, const float *out, const float *grad_out,
                       const float *lse, float *grad_q, float *grad_k, float *grad_v, const long *strides) {
    Strides s[8];
    read_strides(strides, 8, s);
    const size_t block = (size_t)(seq + LANES) * head_dim;
    float *kt = calloc(4 * block + 2 * (seq + LANES), sizeof(float)), *vt = kt + block, *gkt = vt + block;
    float *gvt = gkt + block, *p = gvt + block, *gs = p + seq + LANES;
    if (kt == NULL) return -2;
#define BACKWARD(D) case D: backward_heads(bh_start, bh_end, n_head, seq, D, window, scale, q, k, v, out, \
                                           grad_out, lse, grad_q, grad_k, grad_v, s, kt, vt, gkt, gvt, p, gs); break;
    switch (head_dim) {
        BACKWARD(1) BACKWARD(2) BACKWARD(3) BACKWARD(4) BACKWARD(5) BACKWARD(6) BACKWARD(7) BACKWARD(8) BACKWARD(16)
        default: free(kt); return -1;
    }
    free(kt);
    return 0;
}
