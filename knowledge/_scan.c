/*
 * knowledge._scan: the matcher's indexed top-N search, compiled.
 *
 * knowledge/matcher.py documents the score; this file is the part of it that touches every
 * example sharing a token with the message, which in Python meant a dozen full-size numpy
 * passes per message. Here it is one pass over the query tokens' postings, keeping each
 * entry's best bound on the way, then a visit of the entries in order of their ceiling, best
 * first, until no remaining entry can reach the top N. The ordered ratio of a visited example
 * is rapidfuzz's: ``ratio(query, example)`` is called back, so rapidfuzz stays the scorer of
 * record.
 *
 * Common tokens (MaxScore, after Turtle and Flood 1995). On a large base the words every
 * question has (借呗, 用不了) are in a third of all examples, and reading their postings was
 * most of the cost. So the most common query tokens start out "non-essential": only examples
 * with at least one rarer token are candidates, and a candidate's overlap with the common
 * tokens is read from a dense per-token array instead. An example made of common tokens only
 * can score at most ``common_bound`` (below); if that, plus the largest adjustment of any
 * entry, is below the N-th score found among the candidates, no such example can enter the
 * top N and the answer is exact. How many common tokens to skip is chosen against a guess of
 * the N-th score (``first_bar``); when the guess was too high, against the N-th score found,
 * which only grows as candidates are added, so a second round always ends the search (with
 * every token read, at worst: the plain search).
 *
 * On a base with many candidate entries, entries whose ceiling is below the guess are left
 * out of the heap at first; if the N-th score found is below the guess, the search goes on
 * with those, against the top it found (``floor`` in search()).
 *
 * Floating point: every score is computed with the same operations in the same order as the
 * exhaustive numpy scorer (Matcher with use_index=False), so the results are identical to
 * the bit; a test compares them. Build with -ffp-contract=off so that no a*b+c is fused.
 *
 * One Index object is not reentrant (it keeps scratch arrays); Matcher holds a lock around
 * ``top``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

/* A bound is the exact score's ceiling in real numbers; in floating point, when the ordered
 * ratio equals the multiset overlap, the two can differ by an ulp. The slack keeps such an
 * example from being pruned. Same value as BOUND_SLACK in matcher.py. */
#define BOUND_SLACK 1e-9

/* What the search reads and writes of one example, together, in 16 bytes: reading these
 * (one cache miss each, postings being sparse) is most of the cost on a large base.
 * Examples are at most a few hundred tokens (entries.MAX_EXAMPLE_CHARS), far below 65,535. */
typedef struct {
    uint32_t stamp;    /* the round that first touched it; >= the query's first round: touched */
    int32_t owner;     /* entry */
    uint16_t length;   /* length of the ordered string (weighted tokens) */
    uint16_t distinct; /* distinct tokens */
    uint16_t inter;    /* weighted overlap with the query (multiset intersection) */
    uint16_t shared;   /* distinct tokens shared with the query */
} Example;

/* A touched entry in the visiting heap: its ceiling kept beside it, no indirection. */
typedef struct {
    double ceiling;
    int32_t entry;
} Ceiling;

/* Dense arrays for at most this many of the most common tokens, those in at least
 * 1/DENSE_SHARE of the examples; only on a base of at least ``skip_from`` examples. */
#define MAX_DENSE 32
#define DENSE_SHARE 32

/* A query token, as the search sees it. */
typedef struct {
    int64_t df;        /* examples that have the token (its postings) */
    int32_t token;
    int32_t cap;       /* the query's weighted count of it */
    int32_t dense;     /* its dense array, or -1 */
    int32_t read;      /* its postings have been read (it is essential) */
} QueryToken;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_tokens, n_examples, n_entries;
    int64_t *post_start;    /* n_tokens + 1: postings of token t are [post_start[t], post_start[t+1]) */
    int32_t *post_example;  /* example of each posting */
    int32_t *post_weight;   /* weighted count of the token in that example */
    Example *ex;            /* n_examples */
    int32_t max_length, max_distinct;
    int64_t *entry_start;   /* n_entries + 1: examples of entry i are [entry_start[i], entry_start[i+1]) */
    double w_ordered, w_multiset, w_set;
    PyObject *ordered;      /* tuple of str: each example's ordered string */
    PyObject *ratio;        /* rapidfuzz.fuzz.ratio */
    /* scratch, reused by every call */
    uint32_t epoch;
    double *per_length;     /* max_length + 1: 200 / (query length + example length) */
    double *per_distinct;   /* max_distinct + 1: 200 / (query distinct + example distinct) */
    int32_t *touched;       /* n_entries: the entries touched by the current query */
    uint32_t *en_stamp;     /* n_entries: the round that first touched it, as Example.stamp */
    double *en_bound;       /* n_entries: best bound of the entry's touched examples */
    Ceiling *heap;          /* n_entries: touched entries, a max-heap by ceiling */
    Ceiling *later;         /* n_entries: those below the heap's batch (see first_batch) */
    double *cand_bound;     /* max examples of one entry */
    double *cand_partial;
    int32_t *cand_example;
    Py_ssize_t max_entry_size;
    /* common tokens: dense_slot[t] is token t's row in dense (n_examples weights), or -1 */
    Py_ssize_t skip_from;
    double first_bar;       /* the first guess of the N-th score, to choose the common tokens */
    Py_ssize_t floor_from;  /* from this many touched entries, search() leaves hopeless ones out */
    int32_t *dense_slot;
    uint8_t *dense;
    int n_dense;
    int last_rounds;        /* searches the last query took (1: common tokens skipped at once) */
    int last_skipped;       /* query tokens whose postings the last query never read */
    int ready;              /* __init__ completed */
} Index;

static void *copy_buffer(PyObject *obj, const char *name, Py_ssize_t itemsize, Py_ssize_t *count)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    /* Integers of the given size (a float32 array has 4-byte items too). */
    const char *format = view.format == NULL ? "B" : view.format;
    if (*format == '<' || *format == '=' || *format == '@')
        format++;
    if (view.itemsize != itemsize || strlen(format) != 1 || strchr("bBhHiIlLqQnN", *format) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: integers of %zd bytes expected", name, itemsize);
        PyBuffer_Release(&view);
        return NULL;
    }
    void *out = PyMem_Malloc(view.len > 0 ? (size_t)view.len : 1);
    if (out == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, view.buf, (size_t)view.len);
    *count = view.len / itemsize;
    PyBuffer_Release(&view);
    return out;
}

static void Index_dealloc(Index *self)
{
    PyMem_Free(self->post_start);
    PyMem_Free(self->post_example);
    PyMem_Free(self->post_weight);
    PyMem_Free(self->ex);
    PyMem_Free(self->entry_start);
    PyMem_Free(self->per_length);
    PyMem_Free(self->per_distinct);
    PyMem_Free(self->touched);
    PyMem_Free(self->en_stamp);
    PyMem_Free(self->en_bound);
    PyMem_Free(self->heap);
    PyMem_Free(self->later);
    PyMem_Free(self->dense_slot);
    PyMem_Free(self->dense);
    PyMem_Free(self->cand_bound);
    PyMem_Free(self->cand_partial);
    PyMem_Free(self->cand_example);
    Py_XDECREF(self->ordered);
    Py_XDECREF(self->ratio);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define ALLOC(ptr, n) \
    do { \
        (ptr) = PyMem_Calloc((size_t)((n) > 0 ? (n) : 1), sizeof(*(ptr))); \
        if ((ptr) == NULL) { PyErr_NoMemory(); goto fail; } \
    } while (0)

static int Index_init(Index *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"post_start", "post_example", "post_weight", "length", "distinct",
                             "owner", "entry_start", "ordered", "ratio", "weights",
                             "skip_from", "first_bar", "floor_from", NULL};
    PyObject *a_post_start, *a_post_example, *a_post_weight, *a_length, *a_distinct, *a_owner,
        *a_entry_start, *ordered, *ratio;
    double w_ordered, w_multiset, w_set;
    Py_ssize_t skip_from = 4096;
    double first_bar = 60.0;
    Py_ssize_t floor_from = 256;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOO!O(ddd)|ndn", kwlist, &a_post_start,
                                     &a_post_example, &a_post_weight, &a_length, &a_distinct,
                                     &a_owner, &a_entry_start, &PyList_Type, &ordered, &ratio,
                                     &w_ordered, &w_multiset, &w_set, &skip_from, &first_bar,
                                     &floor_from))
        return -1;
    if (self->post_start != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Index is already initialised");
        return -1;
    }
    if (!PyCallable_Check(ratio)) {
        PyErr_SetString(PyExc_TypeError, "ratio must be callable");
        return -1;
    }
    Py_ssize_t n_post_start, n_posts, n_weights, n_length, n_distinct, n_owner, n_entry_start;
    int32_t *length = NULL, *distinct = NULL, *owner = NULL;
    int ok = (self->post_start = copy_buffer(a_post_start, "post_start", 8, &n_post_start)) &&
             (self->post_example = copy_buffer(a_post_example, "post_example", 4, &n_posts)) &&
             (self->post_weight = copy_buffer(a_post_weight, "post_weight", 4, &n_weights)) &&
             (length = copy_buffer(a_length, "length", 4, &n_length)) &&
             (distinct = copy_buffer(a_distinct, "distinct", 4, &n_distinct)) &&
             (owner = copy_buffer(a_owner, "owner", 4, &n_owner)) &&
             (self->entry_start = copy_buffer(a_entry_start, "entry_start", 8, &n_entry_start));
    if (ok) {
        self->ex = PyMem_Calloc((size_t)(n_length > 0 ? n_length : 1), sizeof(Example));
        if (self->ex == NULL) {
            PyErr_NoMemory();
            ok = 0;
        }
    }
    if (ok) {
        self->n_tokens = n_post_start - 1;
        self->n_examples = n_length;
        self->n_entries = n_entry_start - 1;
        if (self->n_tokens < 0 || self->n_entries < 0 || n_weights != n_posts ||
            n_distinct != n_length || n_owner != n_length ||
            PyList_GET_SIZE(ordered) != n_length || self->post_start[0] != 0 ||
            self->post_start[self->n_tokens] != n_posts || self->entry_start[0] != 0 ||
            self->entry_start[self->n_entries] != n_length) {
            PyErr_SetString(PyExc_ValueError, "inconsistent index arrays");
            ok = 0;
        }
    }
    for (Py_ssize_t j = 0; ok && j < n_length; j++) {
        if (length[j] < 1 || distinct[j] < 1 || distinct[j] > length[j] || length[j] > UINT16_MAX) {
            PyErr_SetString(PyExc_ValueError, "example length or distinct count out of range");
            ok = 0;
            break;
        }
        self->ex[j].owner = owner[j];
        self->ex[j].length = (uint16_t)length[j];
        self->ex[j].distinct = (uint16_t)distinct[j];
        if (length[j] > self->max_length)
            self->max_length = length[j];
        if (distinct[j] > self->max_distinct)
            self->max_distinct = distinct[j];
    }
    PyMem_Free(length);
    PyMem_Free(distinct);
    PyMem_Free(owner);
    if (!ok)
        return -1;
    /* Validate every index once here, so that ``top`` can trust them. */
    for (Py_ssize_t t = 0; t < self->n_tokens; t++)
        if (self->post_start[t] > self->post_start[t + 1]) {
            PyErr_SetString(PyExc_ValueError, "post_start must not decrease");
            return -1;
        }
    for (Py_ssize_t p = 0; p < n_posts; p++)
        if (self->post_example[p] < 0 || self->post_example[p] >= n_length ||
            self->post_weight[p] <= 0) {
            PyErr_SetString(PyExc_ValueError, "posting out of range");
            return -1;
        }
    /* Each token's postings in ascending example order: the search reads them block by block. */
    for (Py_ssize_t t = 0; t < self->n_tokens; t++)
        for (int64_t p = self->post_start[t] + 1; p < self->post_start[t + 1]; p++)
            if (self->post_example[p] <= self->post_example[p - 1]) {
                PyErr_SetString(PyExc_ValueError, "postings must ascend by example");
                return -1;
            }
    Py_ssize_t max_size = 0;
    for (Py_ssize_t i = 0; i < self->n_entries; i++) {
        Py_ssize_t size = (Py_ssize_t)(self->entry_start[i + 1] - self->entry_start[i]);
        if (size < 0) {
            PyErr_SetString(PyExc_ValueError, "entry_start must not decrease");
            return -1;
        }
        for (int64_t j = self->entry_start[i]; j < self->entry_start[i + 1]; j++)
            if (self->ex[j].owner != i) {
                PyErr_SetString(PyExc_ValueError, "owner disagrees with entry_start");
                return -1;
            }
        if (size > max_size)
            max_size = size;
    }
    for (Py_ssize_t j = 0; j < n_length; j++)
        if (!PyUnicode_Check(PyList_GET_ITEM(ordered, j))) {
            PyErr_SetString(PyExc_TypeError, "ordered must be a list of str");
            return -1;
        }
    self->max_entry_size = max_size;
    self->w_ordered = w_ordered;
    self->w_multiset = w_multiset;
    self->w_set = w_set;
    /* A tuple of its own: nobody can change it under the search. */
    self->ordered = PyList_AsTuple(ordered);
    if (self->ordered == NULL)
        return -1;
    Py_INCREF(ratio);
    self->ratio = ratio;
    ALLOC(self->per_length, self->max_length + 1);
    ALLOC(self->per_distinct, self->max_distinct + 1);
    ALLOC(self->touched, self->n_entries);
    ALLOC(self->en_stamp, self->n_entries);
    ALLOC(self->en_bound, self->n_entries);
    ALLOC(self->heap, self->n_entries + 1);
    ALLOC(self->later, self->n_entries + 1);
    ALLOC(self->cand_bound, max_size);
    ALLOC(self->cand_partial, max_size);
    ALLOC(self->cand_example, max_size);

    /* Dense arrays of the most common tokens (weights up to 255), most common first. */
    self->skip_from = skip_from < 0 ? 0 : skip_from;
    self->first_bar = first_bar;
    self->floor_from = floor_from;
    ALLOC(self->dense_slot, self->n_tokens);
    for (Py_ssize_t t = 0; t < self->n_tokens; t++)
        self->dense_slot[t] = -1;
    if (n_length > 0 && n_length >= self->skip_from) {
        int32_t chosen[MAX_DENSE];
        int n_chosen = 0;
        const int64_t min_df = n_length / DENSE_SHARE > 0 ? n_length / DENSE_SHARE : 1;
        /* Tokens with a weight over 255 somewhere cannot have a dense (uint8) array: marked
         * -2 here, in one pass over the postings, and -1 again once the choice is made. */
        for (Py_ssize_t t = 0; t < self->n_tokens; t++)
            for (int64_t p = self->post_start[t]; p < self->post_start[t + 1]; p++)
                if (self->post_weight[p] > 255) {
                    self->dense_slot[t] = -2;
                    break;
                }
        for (int round = 0; round < MAX_DENSE; round++) {
            int32_t best = -1;
            int64_t best_df = min_df - 1;
            for (Py_ssize_t t = 0; t < self->n_tokens; t++) {
                int64_t df = self->post_start[t + 1] - self->post_start[t];
                if (df > best_df && self->dense_slot[t] == -1) {
                    best = (int32_t)t;
                    best_df = df;
                }
            }
            if (best < 0)
                break;
            self->dense_slot[best] = n_chosen;
            chosen[n_chosen++] = best;
        }
        for (Py_ssize_t t = 0; t < self->n_tokens; t++)
            if (self->dense_slot[t] == -2)
                self->dense_slot[t] = -1;
        self->n_dense = n_chosen;
        if (n_chosen > 0) {
            ALLOC(self->dense, (Py_ssize_t)n_chosen * n_length);
            for (int c = 0; c < n_chosen; c++) {
                uint8_t *row = self->dense + (size_t)c * (size_t)n_length;
                for (int64_t p = self->post_start[chosen[c]]; p < self->post_start[chosen[c] + 1];
                     p++)
                    row[self->post_example[p]] = (uint8_t)self->post_weight[p];
            }
        }
    }
    self->ready = 1;
    return 0;
fail:
    return -1;
}

/* Heap order: higher ceiling first; on equal ceilings the lower entry (as numpy's lexsort). */
static inline int before(const Ceiling *a, const Ceiling *b)
{
    return a->ceiling > b->ceiling || (a->ceiling == b->ceiling && a->entry < b->entry);
}

static void sift_down(Ceiling *heap, Py_ssize_t n, Py_ssize_t at)
{
    Ceiling item = heap[at];
    for (;;) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(&heap[child + 1], &heap[child]))
            child++;
        if (!before(&heap[child], &item))
            break;
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = item;
}

/* A large heap is not built whole: usually a few dozen entries are visited. The entries of
 * the highest ceilings, at least VISIT_BATCH of them, found by counting ceilings in BUCKETS
 * bands of [0, 100], make the heap; the rest wait in ``later`` and make the heap once it is
 * empty. Each of the first has a higher ceiling than each of the rest, so the entries are
 * visited in the same order as from one heap of all of them. */
#define VISIT_BATCH 64
#define BUCKETS 1024

static inline int bucket_of(double ceiling) /* ceiling in [0, 100]; monotonic */
{
    const int b = (int)(ceiling * ((BUCKETS - 1) / 100.0));
    return b < BUCKETS - 1 ? b : BUCKETS - 1;
}

/* heap[0..n) (ceilings in [0, 100]) -> a max-heap of its best entries, heap[0..returned),
 * and the others in later[0..*n_later). */
static Py_ssize_t first_batch(Ceiling *heap, Py_ssize_t n, Ceiling *later, Py_ssize_t *n_later)
{
    *n_later = 0;
    if (n > 4 * VISIT_BATCH) {
        int count[BUCKETS] = {0};
        for (Py_ssize_t k = 0; k < n; k++)
            count[bucket_of(heap[k].ceiling)]++;
        int cut = BUCKETS - 1;
        for (Py_ssize_t above = count[cut]; cut > 0 && above < VISIT_BATCH;)
            above += count[--cut];
        Py_ssize_t n_first = 0;
        for (Py_ssize_t k = 0; k < n; k++) {
            const Ceiling item = heap[k];
            if (bucket_of(item.ceiling) >= cut)
                heap[n_first++] = item;
            else
                later[(*n_later)++] = item;
        }
        n = n_first;
    }
    for (Py_ssize_t k = n / 2 - 1; k >= 0; k--)
        sift_down(heap, n, k);
    return n;
}

static inline double clip(double x)
{
    return x < 0.0 ? 0.0 : (x > 100.0 ? 100.0 : x);
}

/* The exact ordered ratio of one example, from rapidfuzz; -1 on error. */
static double call_ratio(Index *self, PyObject *query, int32_t example)
{
    PyObject *args[2] = {query, PyTuple_GET_ITEM(self->ordered, example)};
    PyObject *result = PyObject_Vectorcall(self->ratio, args, 2, NULL);
    if (result == NULL)
        return -1.0;
    double value = PyFloat_AsDouble(result);
    Py_DECREF(result);
    if (value == -1.0 && PyErr_Occurred())
        return -1.0;
    return value;
}

PyDoc_STRVAR(Index_top_doc,
"top(ids, counts, length, adjust, query, n, max_adjust) -> list of (score, entry), best\n"
"first\n\n"
"ids: the query's distinct token ids; counts: the weighted count of each; length: the\n"
"length of the query's ordered string; adjust: a float64 buffer, points added per entry;\n"
"query: the ordered string; n: how many entries; max_adjust: at least the largest of\n"
"adjust. Entries whose score is not above 0 may be left out.");

/* The best an example made only of the query's first n_common tokens could score: its
 * overlap is at most their weight X in the query (and at most its own length), so the
 * multiset part is at most 200 X / (query length + X); likewise the set part with their
 * number. */
static double common_bound(const Index *self, const QueryToken *q, Py_ssize_t n_common,
                           double qlen, double qdistinct)
{
    if (n_common <= 0)
        return -HUGE_VAL;
    double x = 0.0;
    for (Py_ssize_t s = 0; s < n_common; s++)
        x += (double)q[s].cap;
    return (self->w_multiset + self->w_ordered) * 200.0 * x / (qlen + x) +
           self->w_set * 200.0 * (double)n_common / (qdistinct + (double)n_common) +
           2 * BOUND_SLACK;
}

/* The exact TOP-n over the touched examples (stamped ``first`` or later) of the n_touched
 * touched entries: entries by ceiling (their best bound plus adjustment), best first; each
 * visited entry scored exactly over its touched examples, best bound first. Fills
 * top_score/top_entry; returns how many, or -1 on a Python error.
 *
 * ``floor`` is a guess of the n-th score: entries whose ceiling is below it are left out of
 * the heap (on a large base most are). If the n-th score found is not below the floor, it is
 * exact; otherwise the search goes on with the entries left out, against the top found. */
static Py_ssize_t search(Index *self, uint32_t first, Py_ssize_t n_touched, double floor,
                         double qlen, double qdistinct, const double *adjust, PyObject *query,
                         Py_ssize_t top_n, double *top_score, int32_t *top_entry)
{
    const Example *restrict ex = self->ex;
    const double *restrict en_bound = self->en_bound;
    Ceiling *restrict heap = self->heap;
    if (n_touched < self->floor_from)
        floor = -HUGE_VAL; /* a small heap: not worth a second search on a wrong guess */
    /* The first pass visits the entries whose ceiling is at least ``floor`` (the front of
     * ``heap``); the others wait at its back, with their ceilings, for a second pass. */
    int second = 0;
    Py_ssize_t n_top = 0, n_heap = 0, back = n_touched;
    for (Py_ssize_t k = 0; k < n_touched; k++) {
        const int32_t i = self->touched[k];
        const Ceiling item = {clip(en_bound[i] + adjust[i]), i};
        const int in = item.ceiling >= floor;
        heap[n_heap] = item; /* both writes, no branch: one of them counts */
        heap[back - 1] = item;
        n_heap += in;
        back -= !in;
    }
again:;
    const int complete = back == n_touched;
    Py_ssize_t n_later;
    n_heap = first_batch(heap, n_heap, self->later, &n_later);

    /* Visit entries by ceiling; stop when no ceiling can reach the n-th score. The top found
     * so far stays: a second pass only adds the entries the first left out. */
    for (;;) {
        if (n_heap == 0) {
            if (n_later == 0)
                break;
            /* The batch is spent: the rest make the heap (below ``back``: n_later is at
             * most the pass's entries, which all lay below it). */
            memcpy(heap, self->later, (size_t)n_later * sizeof(Ceiling));
            n_heap = n_later;
            n_later = 0;
            for (Py_ssize_t k = n_heap / 2 - 1; k >= 0; k--)
                sift_down(heap, n_heap, k);
        }
        const Ceiling next = heap[0];
        const int32_t i = next.entry;
        heap[0] = heap[--n_heap];
        if (n_heap > 0)
            sift_down(heap, n_heap, 0);
        if (!(en_bound[i] > 0.0))
            continue;
        if (n_top >= top_n && next.ceiling < top_score[n_top - 1])
            break;
        /* The entry's touched examples; then by bound, best first, while a bound can beat
         * the best exact score so far. */
        Py_ssize_t m = 0;
        for (int64_t j = self->entry_start[i]; j < self->entry_start[i + 1]; j++) {
            const Example *e = &ex[j];
            if (e->stamp < first)
                continue;
            double multiset = 200.0 * (double)e->inter / (qlen + (double)e->length);
            double distinct = 200.0 * (double)e->shared / (qdistinct + (double)e->distinct);
            double partial = self->w_multiset * multiset + self->w_set * distinct;
            self->cand_partial[m] = partial;
            self->cand_bound[m] = partial + self->w_ordered * multiset + BOUND_SLACK;
            self->cand_example[m] = (int32_t)j;
            m++;
        }
        double best = -1.0;
        for (;;) {
            Py_ssize_t pick = -1;
            for (Py_ssize_t c = 0; c < m; c++)
                if (self->cand_bound[c] > best &&
                    (pick < 0 || self->cand_bound[c] > self->cand_bound[pick]))
                    pick = c;
            if (pick < 0)
                break;
            double ratio = call_ratio(self, query, self->cand_example[pick]);
            if (ratio < 0.0)
                return -1;
            double score = self->cand_partial[pick] + self->w_ordered * ratio;
            if (score > best)
                best = score;
            self->cand_bound[pick] = -1.0; /* visited */
        }
        double score = best > 0.0 ? clip(best + adjust[i]) : 0.0;
        /* Insert (score, i), kept in order: higher score first, then lower entry. */
        Py_ssize_t at = n_top;
        while (at > 0 && (top_score[at - 1] < score ||
                          (top_score[at - 1] == score && top_entry[at - 1] > i))) {
            top_score[at] = top_score[at - 1];
            top_entry[at] = top_entry[at - 1];
            at--;
        }
        top_score[at] = score;
        top_entry[at] = i;
        if (n_top < top_n)
            n_top++;
    }
    if (!complete && !second && (n_top < top_n || top_score[top_n - 1] < floor)) {
        /* The guess was too high. Every entry with a ceiling of at least ``floor`` was
         * visited (the visit stopped early only at a ceiling below the n-th score, which is
         * not below ``floor`` then), so their exact scores are in the top already: the
         * second pass visits the others, by ceiling, against the same top. (The visit only
         * moved items below n_heap, never those at the back.) */
        second = 1;
        n_heap = 0;
        for (Py_ssize_t k = back; k < n_touched; k++) {
            heap[n_heap] = heap[k];
            n_heap += heap[k].ceiling >= -HUGE_VAL; /* not NaN */
        }
        back = n_touched;
        goto again;
    }
    return n_top;
}

static PyObject *Index_top(Index *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Index is not initialised");
        return NULL;
    }
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "top() takes 7 arguments");
        return NULL;
    }
    const double max_adjust = PyFloat_AsDouble(args[6]);
    if (max_adjust == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *ids = args[0], *counts = args[1], *query = args[4];
    Py_ssize_t qlength = PyLong_AsSsize_t(args[2]);
    Py_ssize_t top_n = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (!PyList_Check(ids) || !PyList_Check(counts) ||
        PyList_GET_SIZE(ids) != PyList_GET_SIZE(counts) || !PyUnicode_Check(query) ||
        top_n < 0 || qlength < 0) {
        PyErr_SetString(PyExc_TypeError, "top(): bad arguments");
        return NULL;
    }
    Py_buffer adjust_view;
    if (PyObject_GetBuffer(args[3], &adjust_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (adjust_view.itemsize != 8 || adjust_view.len / 8 != self->n_entries ||
        adjust_view.format == NULL || strcmp(adjust_view.format, "d") != 0) {
        PyBuffer_Release(&adjust_view);
        PyErr_SetString(PyExc_TypeError, "adjust must be float64, one per entry");
        return NULL;
    }
    const double *adjust = adjust_view.buf;
    PyObject *result = NULL;
    double *top_score = NULL;
    int32_t *top_entry = NULL;
    QueryToken *q = NULL;
    const Py_ssize_t nq = PyList_GET_SIZE(ids);

    top_score = PyMem_Malloc((size_t)(top_n + 1) * sizeof(double));
    top_entry = PyMem_Malloc((size_t)(top_n + 1) * sizeof(int32_t));
    q = PyMem_Malloc((size_t)(nq > 0 ? nq : 1) * sizeof(QueryToken));
    if (top_score == NULL || top_entry == NULL || q == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The query tokens, checked, most common first (ties: lower token first). */
    for (Py_ssize_t k = 0; k < nq; k++) {
        Py_ssize_t t = PyLong_AsSsize_t(PyList_GET_ITEM(ids, k));
        long count = PyLong_AsLong(PyList_GET_ITEM(counts, k));
        if (PyErr_Occurred())
            goto done;
        if (t < 0 || t >= self->n_tokens) {
            PyErr_SetString(PyExc_IndexError, "token id out of range");
            goto done;
        }
        if (count < 1) {
            PyErr_SetString(PyExc_ValueError, "token counts must be positive");
            goto done;
        }
        QueryToken item = {self->post_start[t + 1] - self->post_start[t], (int32_t)t,
                           count < INT32_MAX ? (int32_t)count : INT32_MAX, self->dense_slot[t],
                           0};
        Py_ssize_t at = k;
        while (at > 0 && (q[at - 1].df < item.df ||
                          (q[at - 1].df == item.df && q[at - 1].token > item.token))) {
            q[at] = q[at - 1];
            at--;
        }
        q[at] = item;
    }
    Py_ssize_t n_top = 0;
    self->last_rounds = 0;
    self->last_skipped = 0;
    if (top_n == 0 || nq == 0)
        goto answer;

    /* Every round of this query stamps with its own number, from ``first`` on. */
    if (self->epoch > UINT32_MAX - (uint32_t)nq - 2) { /* about to wrap: forget every stamp */
        for (Py_ssize_t j = 0; j < self->n_examples; j++)
            self->ex[j].stamp = 0;
        memset(self->en_stamp, 0, (size_t)self->n_entries * sizeof(uint32_t));
        self->epoch = 0;
    }
    const uint32_t first = self->epoch + 1;
    const double qlen = (double)qlength, qdistinct = (double)nq;
    for (int32_t n = 0; n <= self->max_length; n++)
        self->per_length[n] = 200.0 / (qlen + (double)n);
    for (int32_t n = 0; n <= self->max_distinct; n++)
        self->per_distinct[n] = 200.0 / (qdistinct + (double)n);

    /* The common (non-essential) tokens: a prefix of the most common ones, all with a dense
     * array, never every token; as many as keep what an example of them alone could score,
     * plus the largest adjustment, under ``bar``: at first first_bar (a fair guess of the
     * N-th score), then the N-th score found. */
    Py_ssize_t n_dense = 0;
    while (n_dense < nq - 1 && q[n_dense].dense >= 0)
        n_dense++;
    Py_ssize_t n_common = n_dense;
    double bar = self->first_bar;

    Example *restrict ex = self->ex;
    int32_t *restrict touched = self->touched;
    uint32_t *restrict en_stamp = self->en_stamp;
    double *restrict en_bound = self->en_bound;
    const double *restrict per_length = self->per_length;
    const double *restrict per_distinct = self->per_distinct;
    const double w_bound = self->w_multiset + self->w_ordered, w_set = self->w_set;
    const int32_t *restrict examples = self->post_example;
    const int32_t *restrict weights = self->post_weight;
    const uint8_t *restrict dense = self->dense;
    const size_t n_examples = (size_t)self->n_examples;
    Py_ssize_t n_touched = 0;
    for (;;) {
        while (n_common > 0 && common_bound(self, q, n_common, qlen, qdistinct) + max_adjust >= bar)
            n_common--;
        const uint32_t round = ++self->epoch;
        self->last_rounds++;
        /* Read the postings of every essential token not read yet. An example touched in an
         * earlier round already counts every token that was common then (through the dense
         * arrays): a token read now only adds to examples touched in this round. A newly
         * touched example gets the common tokens' overlap from their dense arrays.
         *
         * Each entry's best bound is kept up to date on the way: the score an example could
         * reach if its ordered ratio were its multiset overlap, which it never exceeds. An
         * example's bound only grows as tokens are added, so the running maximum is the
         * maximum of the final bounds. A bound only prunes, so it may multiply by a
         * reciprocal (within an ulp or two: far inside BOUND_SLACK); the exact scores in
         * search() divide as the numpy scorer does. */
        for (Py_ssize_t k = n_common; k < nq; k++) {
            if (q[k].read)
                continue;
            const int32_t c = q[k].cap;
            /* The bounds in locals: the writes to ex[] below could alias them otherwise, and
             * the compiler would read them again for every posting. */
            const int64_t p_end = self->post_start[q[k].token + 1];
            for (int64_t p = self->post_start[q[k].token]; p < p_end; p++) {
                const int32_t j = examples[p], w = weights[p];
                Example *e = &ex[j];
                if (e->stamp == round) {
                    e->inter += (uint16_t)(w < c ? w : c);
                    e->shared += 1;
                } else if (e->stamp >= first) {
                    continue; /* an earlier round's: counted this token as common */
                } else {
                    int32_t inter = w < c ? w : c, shared = 1;
                    for (Py_ssize_t s = 0; s < n_common; s++) {
                        const int32_t d = dense[(size_t)q[s].dense * n_examples + (size_t)j];
                        inter += d < q[s].cap ? d : q[s].cap;
                        shared += d > 0;
                    }
                    e->stamp = round;
                    e->inter = (uint16_t)inter;
                    e->shared = (uint16_t)shared;
                }
                const double bound = w_bound * (double)e->inter * per_length[e->length] +
                                     w_set * (double)e->shared * per_distinct[e->distinct] +
                                     2 * BOUND_SLACK;
                const int32_t i = e->owner;
                if (en_stamp[i] < first) {
                    en_stamp[i] = round;
                    en_bound[i] = bound;
                    touched[n_touched++] = i;
                } else if (bound > en_bound[i]) {
                    en_bound[i] = bound;
                }
            }
            q[k].read = 1;
        }
        n_top = search(self, first, n_touched, bar, qlen, qdistinct, adjust, query, top_n,
                       top_score, top_entry);
        if (n_top < 0)
            goto done;
        self->last_skipped = (int)n_common;
        if (n_common == 0)
            break;
        /* Exact if no example of common tokens alone can reach the N-th score; else fewer
         * common tokens, under the N-th score found (which only grows with more candidates,
         * so the next round ends the search). */
        if (n_top < top_n)
            bar = -HUGE_VAL; /* every token essential */
        else if (common_bound(self, q, n_common, qlen, qdistinct) + max_adjust <
                 top_score[top_n - 1])
            break;
        else
            bar = top_score[top_n - 1];
    }

answer:
    result = PyList_New(n_top);
    if (result == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < n_top; k++) {
        PyObject *pair = Py_BuildValue("(dn)", top_score[k], (Py_ssize_t)top_entry[k]);
        if (pair == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, k, pair);
    }
done:
    PyMem_Free(q);
    PyMem_Free(top_score);
    PyMem_Free(top_entry);
    PyBuffer_Release(&adjust_view);
    return result;
}

static PyMemberDef Index_members[] = {
    {"last_rounds", T_INT, offsetof(Index, last_rounds), READONLY,
     "How many searches the last query took (1: its common tokens were skipped at once)."},
    {"last_skipped", T_INT, offsetof(Index, last_skipped), READONLY,
     "How many of the last query's tokens were never read (common, and provably irrelevant)."},
    {"dense_tokens", T_INT, offsetof(Index, n_dense), READONLY,
     "How many common tokens have a dense array."},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef Index_methods[] = {
    {"top", (PyCFunction)(void (*)(void))Index_top, METH_FASTCALL, Index_top_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "knowledge._scan.Index",
    .tp_basicsize = sizeof(Index),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("The matcher's inverted index and its top-N search."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
    .tp_members = Index_members,
};

/*
 * gram_ids(text, ids): the values in ``ids`` (a dict of str -> int) of the character 1-, 2-
 * and 3-grams of each run of non-space characters of ``text``, each n-gram looked up once per
 * occurrence (duplicates possible). The entry model's features (knowledge/model.py); in
 * Python the slicing and lookups were most of its cost per message.
 */
PyDoc_STRVAR(gram_ids_doc, "gram_ids(text, ids) -> list of ids of the text's character 1-3-grams");

static PyObject *gram_ids(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "gram_ids(text: str, ids: dict)");
        return NULL;
    }
    PyObject *text = args[0], *ids = args[1];
    if (PyUnicode_READY(text) < 0)
        return NULL;
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t start = 0;
    while (start < size) {
        while (start < size && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start)))
            start++;
        Py_ssize_t end = start;
        while (end < size && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end)))
            end++;
        for (Py_ssize_t n = 1; n <= 3; n++) {
            for (Py_ssize_t i = start; i + n <= end; i++) {
                PyObject *gram = PyUnicode_Substring(text, i, i + n);
                if (gram == NULL)
                    goto fail;
                PyObject *id = PyDict_GetItemWithError(ids, gram); /* borrowed */
                Py_DECREF(gram);
                if (id == NULL) {
                    if (PyErr_Occurred())
                        goto fail;
                    continue;
                }
                if (PyList_Append(out, id) < 0)
                    goto fail;
            }
        }
        start = end;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/*
 * nb_scores(ids, post_start, post_entry, post_weight, n_entries, temperature): the entry
 * model's beliefs (knowledge/model.py): per entry, the sum of the weights of the message's
 * feature ids (ascending) read from their postings, in that order; then the softmax at
 * ``temperature`` over every entry, entries with no weight scoring 0. Returns None when no
 * entry has a weight, else (beliefs: dict entry -> belief, rest: the belief of every other
 * entry, best: the entry believed most, lowest first on ties).
 */
PyDoc_STRVAR(nb_scores_doc, "nb_scores(ids, post_start, post_entry, post_weight, n_entries, temperature)");

static int get_view(PyObject *obj, Py_buffer *view, const char *name, const char *formats)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *format = view->format == NULL ? "B" : view->format;
    if (*format == '<' || *format == '=' || *format == '@')
        format++;
    if (view->itemsize != 8 || strlen(format) != 1 || strchr(formats, *format) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: 8-byte items of format %s expected", name, formats);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static PyObject *nb_scores(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "nb_scores(ids: list, post_start, post_entry, post_weight, n_entries, temperature)");
        return NULL;
    }
    Py_ssize_t n_entries = PyLong_AsSsize_t(args[4]);
    double temperature = PyFloat_AsDouble(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (n_entries <= 0)
        Py_RETURN_NONE;
    Py_buffer vs, ve, vw;
    if (get_view(args[1], &vs, "post_start", "qlnQLN") < 0)
        return NULL;
    if (get_view(args[2], &ve, "post_entry", "qlnQLN") < 0) {
        PyBuffer_Release(&vs);
        return NULL;
    }
    if (get_view(args[3], &vw, "post_weight", "d") < 0) {
        PyBuffer_Release(&vs);
        PyBuffer_Release(&ve);
        return NULL;
    }
    const int64_t *start = vs.buf, *entry = ve.buf;
    const double *weight = vw.buf;
    Py_ssize_t n_start = vs.len / 8, n_post = ve.len / 8;
    PyObject *result = NULL;
    double *acc = PyMem_Calloc((size_t)n_entries, sizeof(double));
    unsigned char *seen = PyMem_Calloc((size_t)n_entries, 1);
    int64_t *touched = PyMem_Malloc((size_t)n_entries * sizeof(int64_t));
    if (acc == NULL || seen == NULL || touched == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (vw.len / 8 != n_post) {
        PyErr_SetString(PyExc_ValueError, "post_entry and post_weight differ in length");
        goto done;
    }
    Py_ssize_t n_touched = 0;
    Py_ssize_t n_ids = PyList_GET_SIZE(args[0]);
    for (Py_ssize_t k = 0; k < n_ids; k++) {
        Py_ssize_t f = PyLong_AsSsize_t(PyList_GET_ITEM(args[0], k));
        if (f == -1 && PyErr_Occurred())
            goto done;
        if (f < 0 || f + 1 >= n_start) {
            PyErr_SetString(PyExc_IndexError, "feature id out of range");
            goto done;
        }
        int64_t lo = start[f], hi = start[f + 1];
        if (lo < 0 || hi > n_post || lo > hi) {
            PyErr_SetString(PyExc_ValueError, "post_start out of range");
            goto done;
        }
        for (int64_t j = lo; j < hi; j++) {
            int64_t e = entry[j];
            if (e < 0 || e >= n_entries) {
                PyErr_SetString(PyExc_ValueError, "post_entry out of range");
                goto done;
            }
            if (!seen[e]) {
                seen[e] = 1;
                touched[n_touched++] = e;
            }
            acc[e] += weight[j];
        }
    }
    if (n_touched == 0) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    qsort(touched, (size_t)n_touched, sizeof(int64_t), cmp_int64);
    double top = acc[touched[0]];
    int64_t best = touched[0];
    for (Py_ssize_t k = 1; k < n_touched; k++) {
        if (acc[touched[k]] > top) {
            top = acc[touched[k]];
            best = touched[k];
        }
    }
    double rest = exp(-temperature * top);
    double total = 0.0;
    for (Py_ssize_t k = 0; k < n_touched; k++) {
        acc[touched[k]] = exp(temperature * (acc[touched[k]] - top));
        total += acc[touched[k]];
    }
    total += (double)(n_entries - n_touched) * rest;
    PyObject *beliefs = PyDict_New();
    if (beliefs == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < n_touched; k++) {
        PyObject *key = PyLong_FromLongLong(touched[k]);
        PyObject *value = PyFloat_FromDouble(acc[touched[k]] / total);
        if (key == NULL || value == NULL || PyDict_SetItem(beliefs, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(beliefs);
            goto done;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    result = Py_BuildValue("(NdL)", beliefs, rest / total, (long long)best);
done:
    PyMem_Free(acc);
    PyMem_Free(seen);
    PyMem_Free(touched);
    PyBuffer_Release(&vs);
    PyBuffer_Release(&ve);
    PyBuffer_Release(&vw);
    return result;
}

/*
 * Model: the entry model's beliefs (knowledge/model.py) in one call a message, for the
 * matcher. gram_ids + nb_scores computed the same numbers, but per message they made a Python
 * string and a dict lookup per character n-gram, allocated three arrays of every entry, and
 * returned a dict of every entry some feature touched (thousands on a large base) of which the
 * matcher reads at most six. Here the n-grams are looked up in an open-addressing table of
 * their code points packed in 64 bits (no Python object per n-gram), the sums go to scratch
 * arrays kept between calls (cleared entry by entry after use), and only the beliefs asked
 * for are returned. The sums, the maximum and the softmax are the same operations in the same
 * order as nb_scores (features ascending, each feature's postings in order, touched entries
 * ascending): identical floats, which tests check. Not reentrant: EntryModel holds a lock.
 */

/* An n-gram of 1-3 code points: each code point + 1 in 21 bits, so that lengths differ. */
static uint64_t pack_gram(int kind, const void *data, Py_ssize_t i, Py_ssize_t n)
{
    uint64_t key = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        key |= ((uint64_t)PyUnicode_READ(kind, data, i + k) + 1) << (21 * k);
    return key;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

typedef struct {
    PyObject_HEAD
    uint64_t *keys;     /* packed n-grams, 0: empty slot */
    int64_t *values;    /* their feature ids */
    uint64_t mask;      /* table size - 1 (a power of two) */
    Py_buffer vs, ve, vw; /* post_start, post_entry, post_weight */
    int have_views;
    Py_ssize_t n_entries, n_features;
    double temperature;
    double *acc;        /* per entry: its sum; 0 between calls */
    unsigned char *seen; /* per entry: touched by this message; 0 between calls */
    int64_t *touched;
    int64_t *ids;       /* the message's feature ids */
    Py_ssize_t ids_cap;
} Model;

static void Model_release(Model *self)
{
    PyMem_Free(self->keys);
    PyMem_Free(self->values);
    PyMem_Free(self->acc);
    PyMem_Free(self->seen);
    PyMem_Free(self->touched);
    PyMem_Free(self->ids);
    self->keys = NULL;
    self->values = NULL;
    self->acc = NULL;
    self->seen = NULL;
    self->touched = NULL;
    self->ids = NULL;
    self->ids_cap = 0;
    if (self->have_views) {
        PyBuffer_Release(&self->vs);
        PyBuffer_Release(&self->ve);
        PyBuffer_Release(&self->vw);
        self->have_views = 0;
    }
}

static void Model_dealloc(Model *self)
{
    Model_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Model(grams, post_start, post_entry, post_weight, n_entries, temperature): ``grams`` maps
 * each character n-gram feature (1-3 characters) to its id. */
static int Model_init(Model *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"grams", "post_start", "post_entry", "post_weight", "n_entries",
                            "temperature", NULL};
    PyObject *grams, *ps, *pe, *pw;
    Py_ssize_t n_entries;
    double temperature;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOOnd", names, &PyDict_Type, &grams, &ps,
                                     &pe, &pw, &n_entries, &temperature))
        return -1;
    Model_release(self);
    if (n_entries < 0) {
        PyErr_SetString(PyExc_ValueError, "n_entries < 0");
        return -1;
    }
    if (get_view(ps, &self->vs, "post_start", "qlnQLN") < 0)
        return -1;
    if (get_view(pe, &self->ve, "post_entry", "qlnQLN") < 0) {
        PyBuffer_Release(&self->vs);
        return -1;
    }
    if (get_view(pw, &self->vw, "post_weight", "d") < 0) {
        PyBuffer_Release(&self->vs);
        PyBuffer_Release(&self->ve);
        return -1;
    }
    self->have_views = 1;
    Py_ssize_t n_post = self->ve.len / 8;
    if (self->vw.len / 8 != n_post || self->vs.len / 8 < 1) {
        PyErr_SetString(PyExc_ValueError, "post_entry and post_weight differ in length");
        goto fail;
    }
    self->n_features = self->vs.len / 8 - 1;
    const int64_t *start = self->vs.buf, *entry = self->ve.buf;
    /* Checked once here, so that a message's sum needs no checks. */
    for (Py_ssize_t f = 0; f < self->n_features; f++) {
        if (start[f] < 0 || start[f] > start[f + 1] || start[f + 1] > n_post) {
            PyErr_SetString(PyExc_ValueError, "post_start out of range");
            goto fail;
        }
    }
    for (Py_ssize_t j = 0; j < n_post; j++) {
        if (entry[j] < 0 || entry[j] >= n_entries) {
            PyErr_SetString(PyExc_ValueError, "post_entry out of range");
            goto fail;
        }
    }
    self->n_entries = n_entries;
    self->temperature = temperature;
    uint64_t size = 8;
    while (size < 2 * (uint64_t)PyDict_GET_SIZE(grams) + 8)
        size <<= 1;
    self->mask = size - 1;
    self->keys = PyMem_Calloc(size, sizeof(uint64_t));
    self->values = PyMem_Calloc(size, sizeof(int64_t));
    self->acc = PyMem_Calloc((size_t)n_entries + 1, sizeof(double));
    self->seen = PyMem_Calloc((size_t)n_entries + 1, 1);
    self->touched = PyMem_Malloc(((size_t)n_entries + 1) * sizeof(int64_t));
    if (!self->keys || !self->values || !self->acc || !self->seen || !self->touched) {
        PyErr_NoMemory();
        goto fail;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(grams, &pos, &key, &value)) {
        if (!PyUnicode_Check(key) || PyUnicode_READY(key) < 0 || PyUnicode_GET_LENGTH(key) < 1 ||
            PyUnicode_GET_LENGTH(key) > 3) {
            PyErr_SetString(PyExc_ValueError, "grams: keys must be strings of 1-3 characters");
            goto fail;
        }
        Py_ssize_t id = PyLong_AsSsize_t(value);
        if (id == -1 && PyErr_Occurred())
            goto fail;
        if (id < 0 || id >= self->n_features) {
            PyErr_SetString(PyExc_IndexError, "feature id out of range");
            goto fail;
        }
        uint64_t packed = pack_gram(PyUnicode_KIND(key), PyUnicode_DATA(key), 0,
                                    PyUnicode_GET_LENGTH(key));
        uint64_t slot = mix64(packed) & self->mask;
        while (self->keys[slot] != 0 && self->keys[slot] != packed)
            slot = (slot + 1) & self->mask;
        self->keys[slot] = packed;
        self->values[slot] = id;
    }
    return 0;
fail:
    Model_release(self);
    return -1;
}

static int add_id(Model *self, Py_ssize_t *n, int64_t id)
{
    if (*n == self->ids_cap) {
        Py_ssize_t cap = self->ids_cap ? 2 * self->ids_cap : 256;
        int64_t *grown = PyMem_Realloc(self->ids, (size_t)cap * sizeof(int64_t));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->ids = grown;
        self->ids_cap = cap;
    }
    self->ids[(*n)++] = id;
    return 0;
}

PyDoc_STRVAR(Model_beliefs_doc,
             "beliefs(text, extra_ids, want) -> None or (beliefs of want, rest, best, belief of best)");

/* beliefs(text, extra_ids, want): the message's features are the character 1-3-grams of each
 * run of non-space characters of ``text`` that ``grams`` has, and ``extra_ids`` (its token
 * features' ids), each once. None when no feature is known or no entry has a weight; else
 * (list: the belief of each entry in ``want``, the belief of every entry no feature touched,
 * the entry believed most (lowest on ties), its belief). */
static PyObject *Model_beliefs(Model *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyUnicode_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "beliefs(text: str, extra_ids: list, want: list)");
        return NULL;
    }
    if (self->acc == NULL) {
        PyErr_SetString(PyExc_ValueError, "Model not initialised");
        return NULL;
    }
    PyObject *text = args[0];
    if (PyUnicode_READY(text) < 0)
        return NULL;
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n_ids = 0;
    for (Py_ssize_t start = 0; start < size;) {
        while (start < size && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, start)))
            start++;
        Py_ssize_t end = start;
        while (end < size && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, end)))
            end++;
        for (Py_ssize_t n = 1; n <= 3; n++) {
            for (Py_ssize_t i = start; i + n <= end; i++) {
                uint64_t packed = pack_gram(kind, data, i, n);
                uint64_t slot = mix64(packed) & self->mask;
                while (self->keys[slot] != 0 && self->keys[slot] != packed)
                    slot = (slot + 1) & self->mask;
                if (self->keys[slot] == packed && add_id(self, &n_ids, self->values[slot]) < 0)
                    return NULL;
            }
        }
        start = end;
    }
    Py_ssize_t n_extra = PyList_GET_SIZE(args[1]);
    for (Py_ssize_t k = 0; k < n_extra; k++) {
        Py_ssize_t f = PyLong_AsSsize_t(PyList_GET_ITEM(args[1], k));
        if (f == -1 && PyErr_Occurred())
            return NULL;
        if (f < 0 || f >= self->n_features) {
            PyErr_SetString(PyExc_IndexError, "feature id out of range");
            return NULL;
        }
        if (add_id(self, &n_ids, f) < 0)
            return NULL;
    }
    if (n_ids == 0)
        Py_RETURN_NONE;
    /* Each feature once, ascending: the order nb_scores sums them in. */
    qsort(self->ids, (size_t)n_ids, sizeof(int64_t), cmp_int64);
    const int64_t *start = self->vs.buf, *entry = self->ve.buf;
    const double *weight = self->vw.buf;
    double *acc = self->acc;
    unsigned char *seen = self->seen;
    int64_t *touched = self->touched;
    Py_ssize_t n_touched = 0;
    for (Py_ssize_t k = 0; k < n_ids; k++) {
        int64_t f = self->ids[k];
        if (k > 0 && f == self->ids[k - 1])
            continue;
        for (int64_t j = start[f]; j < start[f + 1]; j++) {
            int64_t e = entry[j];
            if (!seen[e]) {
                seen[e] = 1;
                touched[n_touched++] = e;
            }
            acc[e] += weight[j];
        }
    }
    if (n_touched == 0)
        Py_RETURN_NONE;
    /* Touched entries ascending: sorted when few, else read off ``seen`` in one pass. */
    if (n_touched * 16 < self->n_entries) {
        qsort(touched, (size_t)n_touched, sizeof(int64_t), cmp_int64);
    } else {
        Py_ssize_t k = 0;
        for (Py_ssize_t e = 0; e < self->n_entries; e++)
            if (seen[e])
                touched[k++] = e;
    }
    double temperature = self->temperature;
    double top = acc[touched[0]];
    int64_t best = touched[0];
    for (Py_ssize_t k = 1; k < n_touched; k++) {
        if (acc[touched[k]] > top) {
            top = acc[touched[k]];
            best = touched[k];
        }
    }
    double rest = exp(-temperature * top);
    double total = 0.0;
    for (Py_ssize_t k = 0; k < n_touched; k++) {
        acc[touched[k]] = exp(temperature * (acc[touched[k]] - top));
        total += acc[touched[k]];
    }
    total += (double)(self->n_entries - n_touched) * rest;
    PyObject *result = NULL;
    Py_ssize_t n_want = PyList_GET_SIZE(args[2]);
    PyObject *wanted = PyList_New(n_want);
    if (wanted == NULL)
        goto clear;
    for (Py_ssize_t k = 0; k < n_want; k++) {
        Py_ssize_t e = PyLong_AsSsize_t(PyList_GET_ITEM(args[2], k));
        if (e == -1 && PyErr_Occurred())
            goto clear;
        if (e < 0 || e >= self->n_entries) {
            PyErr_SetString(PyExc_IndexError, "entry out of range");
            goto clear;
        }
        PyObject *value = PyFloat_FromDouble(seen[e] ? acc[e] / total : rest / total);
        if (value == NULL)
            goto clear;
        PyList_SET_ITEM(wanted, k, value);
    }
    result = Py_BuildValue("(OdLd)", wanted, rest / total, (long long)best, acc[best] / total);
clear:
    Py_XDECREF(wanted);
    /* The scratch arrays are all zero again for the next message. */
    for (Py_ssize_t k = 0; k < n_touched; k++) {
        acc[touched[k]] = 0.0;
        seen[touched[k]] = 0;
    }
    return result;
}

static PyMethodDef Model_methods[] = {
    {"beliefs", (PyCFunction)(void (*)(void))Model_beliefs, METH_FASTCALL, Model_beliefs_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "knowledge._scan.Model",
    .tp_basicsize = sizeof(Model),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("The entry model's postings and n-gram table, and its beliefs."),
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Model_init,
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_methods = Model_methods,
};

static PyMethodDef module_methods[] = {
    {"gram_ids", (PyCFunction)(void (*)(void))gram_ids, METH_FASTCALL, gram_ids_doc},
    {"nb_scores", (PyCFunction)(void (*)(void))nb_scores, METH_FASTCALL, nb_scores_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "knowledge._scan",
    .m_doc = PyDoc_STR("The matcher's indexed top-N search, compiled (see matcher.py)."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    if (PyType_Ready(&IndexType) < 0)
        return NULL;
    if (PyType_Ready(&ModelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ModelType);
    if (PyModule_AddObject(m, "Model", (PyObject *)&ModelType) < 0) {
        Py_DECREF(&ModelType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
