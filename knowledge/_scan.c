/*
 * knowledge._scan: the matcher's indexed top-N search, compiled.
 *
 * knowledge/matcher.py documents the score; this file is the part of it that touches every
 * example sharing a token with the message, which in Python meant a dozen full-size numpy
 * passes per message. Here it is one pass over the query tokens' postings, then a visit of
 * the entries in order of their ceiling, best first, until no remaining entry can reach the
 * top N. The ordered ratio of a visited example is rapidfuzz's: ``ratio(query, example)`` is
 * called back, so rapidfuzz stays the scorer of record.
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A bound is the exact score's ceiling in real numbers; in floating point, when the ordered
 * ratio equals the multiset overlap, the two can differ by an ulp. The slack keeps such an
 * example from being pruned. Same value as BOUND_SLACK in matcher.py. */
#define BOUND_SLACK 1e-9

/* What the search reads and writes of one example, together: one cache line visit each. */
typedef struct {
    uint32_t stamp;   /* == the Index's epoch when touched by the current query */
    int32_t inter;    /* weighted overlap with the query (multiset intersection) */
    int32_t shared;   /* distinct tokens shared with the query */
    int32_t owner;    /* entry */
    int32_t length;   /* length of the ordered string (weighted tokens) */
    int32_t distinct; /* distinct tokens */
} Example;

/* A touched entry in the visiting heap: its ceiling kept beside it, no indirection. */
typedef struct {
    double ceiling;
    int32_t entry;
} Ceiling;

/* Examples are scanned in blocks of this many, so that the scratch of a block stays in
 * cache between accumulating its overlaps and reading them back. */
#define BLOCK 8192

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
    PyObject *ordered;      /* list of str: each example's ordered string */
    PyObject *ratio;        /* rapidfuzz.fuzz.ratio */
    /* scratch, reused by every call */
    uint32_t epoch;
    double *per_length;     /* max_length + 1: 200 / (query length + example length) */
    double *per_distinct;   /* max_distinct + 1: 200 / (query distinct + example distinct) */
    int32_t *touched;       /* BLOCK: touched examples of the current block */
    int64_t *cursor;        /* per query token: its next posting */
    uint32_t *en_stamp;     /* n_entries */
    double *en_bound;       /* n_entries: best bound of the entry's touched examples */
    Ceiling *heap;          /* n_entries: touched entries, a max-heap by ceiling */
    double *cand_bound;     /* max examples of one entry */
    double *cand_partial;
    int32_t *cand_example;
    Py_ssize_t max_entry_size;
} Index;

static void *copy_buffer(PyObject *obj, const char *name, Py_ssize_t itemsize, Py_ssize_t *count)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (view.itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: items of %zd bytes expected, got %zd", name,
                     itemsize, view.itemsize);
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
    PyMem_Free(self->cursor);
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
                             "owner", "entry_start", "ordered", "ratio", "weights", NULL};
    PyObject *a_post_start, *a_post_example, *a_post_weight, *a_length, *a_distinct, *a_owner,
        *a_entry_start, *ordered, *ratio;
    double w_ordered, w_multiset, w_set;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOO!O(ddd)", kwlist, &a_post_start,
                                     &a_post_example, &a_post_weight, &a_length, &a_distinct,
                                     &a_owner, &a_entry_start, &PyList_Type, &ordered, &ratio,
                                     &w_ordered, &w_multiset, &w_set))
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
    if (ok && (n_distinct != n_length || n_owner != n_length)) {
        PyErr_SetString(PyExc_ValueError, "inconsistent index arrays");
        ok = 0;
    }
    for (Py_ssize_t j = 0; ok && j < n_length; j++) {
        if (length[j] < 1 || distinct[j] < 1 || distinct[j] > length[j]) {
            PyErr_SetString(PyExc_ValueError, "example length or distinct count out of range");
            ok = 0;
            break;
        }
        self->ex[j].owner = owner[j];
        self->ex[j].length = length[j];
        self->ex[j].distinct = distinct[j];
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
    self->n_tokens = n_post_start - 1;
    self->n_examples = n_length;
    self->n_entries = n_entry_start - 1;
    if (self->n_tokens < 0 || self->n_entries < 0 || n_weights != n_posts ||
        PyList_GET_SIZE(ordered) != n_length ||
        self->post_start[0] != 0 || self->post_start[self->n_tokens] != n_posts ||
        self->entry_start[0] != 0 || self->entry_start[self->n_entries] != n_length) {
        PyErr_SetString(PyExc_ValueError, "inconsistent index arrays");
        return -1;
    }
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
    Py_INCREF(ordered);
    self->ordered = ordered;
    Py_INCREF(ratio);
    self->ratio = ratio;
    ALLOC(self->per_length, self->max_length + 1);
    ALLOC(self->per_distinct, self->max_distinct + 1);
    /* One spare slot each: the search writes a candidate before it knows whether to keep it. */
    ALLOC(self->touched, BLOCK + 1);
    ALLOC(self->en_stamp, self->n_entries);
    ALLOC(self->en_bound, self->n_entries);
    ALLOC(self->heap, self->n_entries + 1);
    ALLOC(self->cand_bound, max_size);
    ALLOC(self->cand_partial, max_size);
    ALLOC(self->cand_example, max_size);
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

static inline double clip(double x)
{
    return x < 0.0 ? 0.0 : (x > 100.0 ? 100.0 : x);
}

/* The exact ordered ratio of one example, from rapidfuzz; -1 on error. */
static double call_ratio(Index *self, PyObject *query, int32_t example)
{
    PyObject *args[2] = {query, PyList_GET_ITEM(self->ordered, example)};
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
"top(ids, counts, length, adjust, query, n) -> list of (score, entry), best first\n\n"
"ids: the query's distinct token ids; counts: the weighted count of each; length: the\n"
"length of the query's ordered string; adjust: a float64 buffer, points added per entry;\n"
"query: the ordered string; n: how many entries. Entries whose score is not above 0 may\n"
"be left out.");

static PyObject *Index_top(Index *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "top() takes 6 arguments");
        return NULL;
    }
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

    Py_ssize_t nq = PyList_GET_SIZE(ids);
    if (++self->epoch == 0) { /* wrapped: forget every stamp */
        for (Py_ssize_t j = 0; j < self->n_examples; j++)
            self->ex[j].stamp = 0;
        memset(self->en_stamp, 0, (size_t)self->n_entries * sizeof(uint32_t));
        self->epoch = 1;
    }
    const uint32_t epoch = self->epoch;

    /* The query tokens, checked; each one's postings are read through a cursor. */
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
    }
    PyMem_Free(self->cursor);
    self->cursor = PyMem_Malloc((size_t)(nq > 0 ? nq : 1) * 3 * sizeof(int64_t));
    if (self->cursor == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *restrict cursor = self->cursor, *restrict stop = cursor + nq, *restrict cap = stop + nq;
    for (Py_ssize_t k = 0; k < nq; k++) {
        Py_ssize_t t = PyLong_AsSsize_t(PyList_GET_ITEM(ids, k));
        long count = PyLong_AsLong(PyList_GET_ITEM(counts, k));
        cursor[k] = self->post_start[t];
        stop[k] = self->post_start[t + 1];
        cap[k] = count < INT32_MAX ? count : INT32_MAX;
    }

    /* Per-query reciprocals for the bounds. A bound only prunes, so it may multiply by a
     * reciprocal (within an ulp or two: far inside BOUND_SLACK); the exact scores below
     * divide as the numpy scorer does. */
    const double qlen = (double)qlength, qdistinct = (double)nq;
    for (int32_t n = 0; n <= self->max_length; n++)
        self->per_length[n] = 200.0 / (qlen + (double)n);
    for (int32_t n = 0; n <= self->max_distinct; n++)
        self->per_distinct[n] = 200.0 / (qdistinct + (double)n);
    const double w_bound = self->w_multiset + self->w_ordered, w_set = self->w_set;

    /* 1 and 2, a block of examples at a time: the overlaps of every example that shares a
     * token (weighted: multiset; distinct: set), then each touched entry's best bound (the
     * score an example could reach if its ordered ratio were its multiset overlap, which it
     * never exceeds). Locals, so that stores are not taken to alias self's fields. */
    Example *restrict ex = self->ex;
    int32_t *restrict touched = self->touched;
    const int32_t *restrict examples = self->post_example;
    const int32_t *restrict weights = self->post_weight;
    const double *restrict per_length = self->per_length;
    const double *restrict per_distinct = self->per_distinct;
    uint32_t *restrict en_stamp = self->en_stamp;
    double *restrict en_bound = self->en_bound;
    Ceiling *restrict heap = self->heap;
    Py_ssize_t n_heap = 0;
    for (Py_ssize_t block = 0; block < self->n_examples; block += BLOCK) {
        const int32_t block_end = (int32_t)(block + BLOCK < self->n_examples ? block + BLOCK
                                                                             : self->n_examples);
        Py_ssize_t n_touched = 0;
        for (Py_ssize_t k = 0; k < nq; k++) {
            const int32_t c = (int32_t)cap[k];
            int64_t p = cursor[k];
            const int64_t end = stop[k];
            for (; p < end; p++) {
                const int32_t j = examples[p], w = weights[p];
                if (j >= block_end)
                    break;
                /* Without branches: whether an example is new to this query is as good as
                 * random here, and mispredictions used to cost more than all the rest. */
                Example *e = &ex[j];
                const int fresh = e->stamp != epoch;
                e->inter = (fresh ? 0 : e->inter) + (w < c ? w : c);
                e->shared = (fresh ? 0 : e->shared) + 1;
                e->stamp = epoch;
                touched[n_touched] = j;
                n_touched += fresh;
            }
            cursor[k] = p;
        }
        for (Py_ssize_t k = 0; k < n_touched; k++) {
            const Example *e = &ex[touched[k]];
            const double bound = w_bound * (double)e->inter * per_length[e->length] +
                                 w_set * (double)e->shared * per_distinct[e->distinct] +
                                 2 * BOUND_SLACK;
            const int32_t i = e->owner;
            const int fresh = en_stamp[i] != epoch;
            const double before = en_bound[i];
            en_bound[i] = fresh || bound > before ? bound : before;
            en_stamp[i] = epoch;
            heap[n_heap].entry = i;
            n_heap += fresh;
        }
    }
    for (Py_ssize_t k = 0; k < n_heap; k++) {
        const int32_t i = heap[k].entry;
        heap[k].ceiling = clip(en_bound[i] + adjust[i]);
    }
    for (Py_ssize_t k = n_heap / 2 - 1; k >= 0; k--)
        sift_down(heap, n_heap, k);

    /* 3. Visit entries by ceiling; score each exactly; stop when no ceiling can reach the
     *    n-th score. */
    top_score = PyMem_Malloc((size_t)(top_n + 1) * sizeof(double));
    top_entry = PyMem_Malloc((size_t)(top_n + 1) * sizeof(int32_t));
    if (top_score == NULL || top_entry == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_top = 0;
    while (n_heap > 0 && top_n > 0) {
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
            const Example *e = &self->ex[j];
            if (e->stamp != epoch)
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
                goto done;
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
    PyMem_Free(top_score);
    PyMem_Free(top_entry);
    PyBuffer_Release(&adjust_view);
    return result;
}

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
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "knowledge._scan",
    .m_doc = PyDoc_STR("The matcher's indexed top-N search, compiled (see matcher.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    if (PyType_Ready(&IndexType) < 0)
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
    return m;
}
