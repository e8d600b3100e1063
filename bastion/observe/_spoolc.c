/* The trace spool's encoder in C: a finished request's context as one JSON line, appended
 * to a buffer that holds a chunk of lines (bastion/observe/spool.py).
 *
 * Its line has the fields of spool.encode()'s, in the same order (format version 4, read
 * back by spool.decode()). Only times are written differently: received_at to the
 * nanosecond (nine decimals), the later marks (``times``, span starts and ends) as integer
 * nanoseconds since received_at (few digits to write). Python's encoder stays the
 * reference and the fallback: add() returns 0 for a line it leaves to Python (a value of
 * a type it does not write, an int beyond 64 bits, a string with lone surrogates, a
 * multi-line response body), and nothing of that line stays in the buffer.
 *
 * Fields are read straight from the dataclasses' slots (their member descriptors give the
 * offsets), so it depends on the layout that Lines() is given, checked there.
 *
 * One thread only: add() and take() run under the GIL and call no Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#include "_slots.h"

#define MAX_DEPTH 32
#define MAX_FIELDS 64

typedef struct {
    PyObject_HEAD
    char *buf;
    size_t len, cap;
    Py_ssize_t count;        /* lines in buf */
    long version;
    PyTypeObject *ctx_type, *span_type, *claim_type;
    Py_ssize_t nfields;
    Py_ssize_t fields[MAX_FIELDS];  /* offsets, in the line's order */
    unsigned char relative[MAX_FIELDS];  /* a time written as ns after received_at */
    unsigned char omitted[MAX_FIELDS];   /* written as null (``omit``: a body's field) */
    int bodies;          /* 0: the bodies are written as null (content mode metadata) */
    Py_ssize_t received_at;
    Py_ssize_t claim, spans, body, raw_body, response_body, chunks;  /* ctx offsets */
    Py_ssize_t priority, tenant;                                      /* claim */
    Py_ssize_t endpoint;
    char prefix[64], skip[64];  /* traced: endpoints under prefix, but not under skip */
    size_t prefix_len, skip_len;
    Py_ssize_t full;     /* on_full() is called once this many lines are held */
    PyObject *python;    /* python(ctx): Python's encoder, for a line left to it */
    PyObject *on_full;
    Py_ssize_t span_name, span_start, span_end, span_attrs;           /* span */
} Lines;

/* ------------------------------------------------------------------ buffer */

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define COLD __attribute__((cold, noinline))
#else
#define LIKELY(x) (x)
#define COLD
#endif

static COLD int grow(Lines *self, size_t more) {
    size_t cap = self->cap ? self->cap : 1 << 17;
    while (cap < self->len + more)
        cap *= 2;
    char *buf = PyMem_Realloc(self->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

static inline int reserve(Lines *self, size_t more) {
    if (LIKELY(self->cap - self->len >= more))
        return 0;
    return grow(self, more);
}

static inline int put(Lines *self, const char *s, size_t n) {
    if (reserve(self, n) < 0)
        return -1;
    memcpy(self->buf + self->len, s, n);
    self->len += n;
    return 0;
}

#define PUT_LIT(self, lit) put((self), (lit), sizeof(lit) - 1)

static inline int put_char(Lines *self, char c) {
    if (reserve(self, 1) < 0)
        return -1;
    self->buf[self->len++] = c;
    return 0;
}

/* ------------------------------------------------------------------ scalars */

static const char PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* v's digits, written backwards ending at ``end``; returns where they start */
static inline char *digits_back(char *end, unsigned long long v) {
    while (v >= 100) {
        end -= 2;
        memcpy(end, PAIRS + (v % 100) * 2, 2);
        v /= 100;
    }
    if (v >= 10) {
        end -= 2;
        memcpy(end, PAIRS + v * 2, 2);
    } else
        *--end = (char)('0' + v);
    return end;
}

static const unsigned long long POW10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

static inline int count_digits(unsigned long long v) {
    if (v < 10)
        return 1;
#if defined(__GNUC__)
    int bits = 64 - __builtin_clzll(v);
    int n = (bits * 1233) >> 12;  /* floor(log10(2^bits)), within one */
    return n + 1 - (v < POW10[n]);
#else
    int n = 1;
    while (n < 20 && v >= POW10[n])
        n++;
    return n;
#endif
}

/* v's digits straight into the buffer (no memcpy call: this runs ~20 times a line) */
static inline int put_u64(Lines *self, unsigned long long v) {
    if (reserve(self, 20) < 0)
        return -1;
    int n = count_digits(v);
    digits_back(self->buf + self->len + n, v);
    self->len += (size_t)n;
    return 0;
}

static int put_int(Lines *self, PyObject *obj) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred()))
        return 1;  /* beyond 64 bits: Python's encoder decides */
    if (v < 0) {
        if (put_char(self, '-') < 0)
            return -1;
        return put_u64(self, (unsigned long long)0 - (unsigned long long)v);
    }
    return put_u64(self, (unsigned long long)v);
}

/* A float: null for nan and inf (as orjson writes them); a time (``fixed``) to the
 * nanosecond; anything else as Python's repr. */
static int put_float(Lines *self, double v, int fixed) {
    if (!isfinite(v))
        return PUT_LIT(self, "null");
    if (fixed && v >= 0.0 && v < 9.0e9) {
        unsigned long long ns = (unsigned long long)(v * 1e9 + 0.5);
        unsigned long long whole = ns / 1000000000ULL, frac = ns % 1000000000ULL;
        if (reserve(self, 32) < 0)
            return -1;
        int n = count_digits(whole);
        char *out = self->buf + self->len;
        digits_back(out + n, whole);
        out[n] = '.';
        char *end = out + n + 10;  /* nine digits, leading zeros kept */
        char *start = digits_back(end, frac);
        while (start > out + n + 1)
            *--start = '0';
        while (end[-1] == '0' && end - 1 > out + n + 1)  /* trailing ones dropped */
            end--;
        self->len += (size_t)(end - out);
        return 0;
    }
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL)
        return -1;
    int rc = put(self, text, strlen(text));
    PyMem_Free(text);
    return rc;
}

/* A time as the nanoseconds since ``base`` (received_at): fewer digits than the time. */
static int put_since(Lines *self, PyObject *obj, double base) {
    if (obj == Py_None)
        return PUT_LIT(self, "null");
    if (!PyFloat_Check(obj))
        return 1;
    double d = (PyFloat_AS_DOUBLE(obj) - base) * 1e9;
    if (!(d > -9.0e18 && d < 9.0e18))  /* nan and inf fail both */
        return 1;
    if (d < 0) {
        if (put_char(self, '-') < 0)
            return -1;
        return put_u64(self, (unsigned long long)(-d + 0.5));
    }
    return put_u64(self, (unsigned long long)(d + 0.5));
}

/* bytes that a JSON string must escape: '"', '\\' and the control characters */
static unsigned char ESCAPE[256];

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* whether any of the 8 bytes in w is '"', '\\' or below 0x20 (no false negatives; a
 * false positive only sends the bytes through the byte loop) */
static inline int word_needs_escape(unsigned long long w) {
    unsigned long long quote = w ^ (ONES * '"'), slash = w ^ (ONES * '\\');
    unsigned long long t = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) |
                           ((w - ONES * 0x20) & ~w);
    return (t & HIGHS) != 0;
}

static int put_escaped(Lines *self, const char *s, Py_ssize_t n) {
    /* worst case \u00XX: six bytes for one */
    if (reserve(self, (size_t)n * 6 + 2) < 0)
        return -1;
    char *out = self->buf + self->len;
    *out++ = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        while (end - p >= 8) {  /* a word at a time while none of it needs escaping */
            unsigned long long w;
            memcpy(&w, p, 8);
            if (word_needs_escape(w))
                break;
            memcpy(out, &w, 8);
            p += 8;
            out += 8;
        }
        const unsigned char *stop = end - p >= 8 ? p + 8 : end;
        for (; p < stop; p++) {
            unsigned char c = *p;
            if (!ESCAPE[c]) {
                *out++ = (char)c;
                continue;
            }
            *out++ = '\\';
            switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = "0123456789abcdef"[c >> 4];
                *out++ = "0123456789abcdef"[c & 15];
            }
        }
    }
    *out++ = '"';
    self->len = (size_t)(out - self->buf);
    return 0;
}

static int put_str(Lines *self, PyObject *obj) {
    Py_ssize_t n;
    const char *s;
    if (PyUnicode_IS_COMPACT_ASCII(obj)) {
        s = (const char *)PyUnicode_DATA(obj);
        n = PyUnicode_GET_LENGTH(obj);
    } else {
        s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (s == NULL) {  /* lone surrogates: not UTF-8 */
            PyErr_Clear();
            return 1;
        }
    }
    return put_escaped(self, s, n);
}

/* ------------------------------------------------------------------ values */

/* 0: written; 1: not ours (Python's encoder takes the line); -1: an error is set */
static int put_value(Lines *self, PyObject *obj, int depth, int fixed);

static int put_items(Lines *self, PyObject *const *items, Py_ssize_t n, int depth) {
    if (put_char(self, '[') < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i && put_char(self, ',') < 0)
            return -1;
        int rc = put_value(self, items[i], depth + 1, 0);
        if (rc)
            return rc;
    }
    return put_char(self, ']');
}

static int put_dict(Lines *self, PyObject *obj, int depth) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    int first = 1;
    if (put_char(self, '{') < 0)
        return -1;
    while (PyDict_Next(obj, &pos, &key, &value)) {
        if (!PyUnicode_Check(key))
            return 1;
        if (!first && put_char(self, ',') < 0)
            return -1;
        first = 0;
        int rc = put_str(self, key);
        if (rc)
            return rc;
        if (put_char(self, ':') < 0)
            return -1;
        rc = put_value(self, value, depth + 1, 0);
        if (rc)
            return rc;
    }
    return put_char(self, '}');
}

static int put_value(Lines *self, PyObject *obj, int depth, int fixed) {
    if (obj == Py_None)
        return PUT_LIT(self, "null");
    if (depth > MAX_DEPTH)
        return 1;
    if (PyUnicode_CheckExact(obj))
        return put_str(self, obj);
    if (obj == Py_True)
        return PUT_LIT(self, "true");
    if (obj == Py_False)
        return PUT_LIT(self, "false");
    if (PyUnicode_Check(obj))
        return put_str(self, obj);
    if (PyLong_Check(obj))
        return put_int(self, obj);
    if (PyFloat_Check(obj))
        return put_float(self, PyFloat_AS_DOUBLE(obj), fixed);
    if (PyDict_Check(obj))
        return put_dict(self, obj, depth);
    if (PyList_Check(obj))
        return put_items(self, ((PyListObject *)obj)->ob_item, PyList_GET_SIZE(obj), depth);
    if (PyTuple_Check(obj))
        return put_items(self, ((PyTupleObject *)obj)->ob_item, PyTuple_GET_SIZE(obj), depth);
    return 1;
}

/* ------------------------------------------------------------------ the line */

/* A body already encoded as JSON, embedded as it is when it is on one line. */
static int put_raw(Lines *self, PyObject *raw) {
    const char *s = PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (memchr(s, '\n', (size_t)n) != NULL)
        return 1;
    return put(self, s, (size_t)n);
}

static int put_spans(Lines *self, PyObject *spans, double base) {
    if (!PyList_Check(spans))
        return 1;
    Py_ssize_t n = PyList_GET_SIZE(spans);
    if (n == 0)
        return PUT_LIT(self, "null");
    if (put_char(self, '[') < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        if (Py_TYPE(span) != self->span_type)
            return 1;
        PyObject *name = slot(span, self->span_name), *start = slot(span, self->span_start);
        PyObject *end = slot(span, self->span_end), *attrs = slot(span, self->span_attrs);
        if (!name || !start || !end || !attrs)
            return 1;
        int rc;
        if ((i && put_char(self, ',') < 0) || put_char(self, '[') < 0)
            return -1;
        if ((rc = put_value(self, name, 1, 0)) || (rc = put_char(self, ',')))
            return rc;
        if ((rc = put_since(self, start, base)) || (rc = put_char(self, ',')))
            return rc;
        if ((rc = put_since(self, end, base)) || (rc = put_char(self, ',')))
            return rc;
        if ((rc = put_value(self, attrs, 1, 0)) || (rc = put_char(self, ']')))
            return rc;
    }
    return put_char(self, ']');
}

/* A stream's events, joined and decoded as UTF-8 (bad bytes replaced), as one string. */
static int put_chunks(Lines *self, PyObject *chunks) {
    if (!PyList_Check(chunks))
        return 1;
    Py_ssize_t n = PyList_GET_SIZE(chunks);
    if (n == 0)
        return PUT_LIT(self, "null");
    for (Py_ssize_t i = 0; i < n; i++)
        if (!PyBytes_CheckExact(PyList_GET_ITEM(chunks, i)))
            return 1;
    size_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        size += (size_t)PyBytes_GET_SIZE(PyList_GET_ITEM(chunks, i));
    char *joined = PyMem_Malloc(size ? size : 1);
    if (joined == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *chunk = PyList_GET_ITEM(chunks, i);
        memcpy(joined + at, PyBytes_AS_STRING(chunk), (size_t)PyBytes_GET_SIZE(chunk));
        at += (size_t)PyBytes_GET_SIZE(chunk);
    }
    PyObject *text = PyUnicode_DecodeUTF8(joined, (Py_ssize_t)size, "replace");
    PyMem_Free(joined);
    if (text == NULL)
        return -1;
    int rc = put_str(self, text);
    Py_DECREF(text);
    return rc;
}

static int put_line(Lines *self, PyObject *ctx) {
    int rc;
    PyObject *received = slot(ctx, self->received_at);
    if (received == NULL || !PyFloat_Check(received))
        return 1;
    double base = PyFloat_AS_DOUBLE(received);
    if (put_char(self, '[') < 0 || put_u64(self, (unsigned long long)self->version) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        PyObject *value = slot(ctx, self->fields[i]);
        if (value == NULL)
            return 1;
        if (put_char(self, ',') < 0)
            return -1;
        if (self->omitted[i])
            rc = PUT_LIT(self, "null");
        else
            rc = self->relative[i] ? put_since(self, value, base)
                                   : put_value(self, value, 0, 1);
        if (rc)
            return rc;
    }
    PyObject *claim = slot(ctx, self->claim);
    if (claim == NULL || Py_TYPE(claim) != self->claim_type)
        return 1;
    PyObject *priority = slot(claim, self->priority), *tenant = slot(claim, self->tenant);
    if (priority == NULL || tenant == NULL)
        return 1;
    if ((rc = put_char(self, ',')) || (rc = put_value(self, priority, 0, 0)))
        return rc;
    if ((rc = put_char(self, ',')) || (rc = put_value(self, tenant, 0, 0)))
        return rc;
    PyObject *spans = slot(ctx, self->spans);
    if (spans == NULL)
        return 1;
    if ((rc = put_char(self, ',')) || (rc = put_spans(self, spans, base)))
        return rc;
    /* the request body: as received when it parsed (ctx.body set), on one line */
    PyObject *body = slot(ctx, self->body), *raw = slot(ctx, self->raw_body);
    if (body == NULL || raw == NULL || put_char(self, ',') < 0)
        return body == NULL || raw == NULL ? 1 : -1;
    if (!self->bodies)  /* nothing of the content on disk: body, answer, stream events */
        return PUT_LIT(self, "null,null,null]\n");
    if (body == Py_None)
        rc = PUT_LIT(self, "null");
    else if (PyBytes_CheckExact(raw) && PyBytes_GET_SIZE(raw)) {
        rc = put_raw(self, raw);
        if (rc == 1)  /* spans lines: the parsed body instead */
            rc = put_value(self, body, 0, 0);
    } else
        rc = put_value(self, body, 0, 0);
    if (rc)
        return rc;
    PyObject *response = slot(ctx, self->response_body);
    if (response == NULL || put_char(self, ',') < 0)
        return response == NULL ? 1 : -1;
    if (response == Py_None || (PyBytes_CheckExact(response) && !PyBytes_GET_SIZE(response)))
        rc = PUT_LIT(self, "null");
    else if (PyBytes_CheckExact(response))
        rc = put_raw(self, response);  /* multi-line: Python parses it */
    else
        rc = 1;
    if (rc)
        return rc;
    PyObject *chunks = slot(ctx, self->chunks);
    if (chunks == NULL || put_char(self, ',') < 0)
        return chunks == NULL ? 1 : -1;
    if (chunks == Py_None)
        rc = PUT_LIT(self, "null");
    else
        rc = put_chunks(self, chunks);
    if (rc)
        return rc;
    return PUT_LIT(self, "]\n");
}

/* ------------------------------------------------------------------ the type */

/* ctx's line appended: 0 (counted), 1 (left to Python) or -1 (an error is set); nothing
 * of a line that is not written stays in the buffer. */
static int append_line(Lines *self, PyObject *ctx) {
    size_t mark = self->len;
    int rc = put_line(self, ctx);
    if (rc)
        self->len = mark;
    else
        self->count++;
    return rc;
}

static PyObject *Lines_add(Lines *self, PyObject *ctx) {
    if (Py_TYPE(ctx) != self->ctx_type)  /* not the layout we read: Python's encoder */
        return PyLong_FromLong(0);
    int rc = append_line(self, ctx);
    if (rc < 0)
        return NULL;
    return PyLong_FromSsize_t(rc ? 0 : self->count);
}

/* Whether ctx's endpoint is traced: 1, 0, or -1 when it is not a plain ASCII str. */
static int traced(Lines *self, PyObject *ctx) {
    PyObject *endpoint = slot(ctx, self->endpoint);
    if (endpoint == NULL || !PyUnicode_CheckExact(endpoint) ||
        !PyUnicode_IS_COMPACT_ASCII(endpoint))
        return -1;
    const char *s = (const char *)PyUnicode_DATA(endpoint);
    size_t n = (size_t)PyUnicode_GET_LENGTH(endpoint);
    return n >= self->prefix_len && memcmp(s, self->prefix, self->prefix_len) == 0 &&
           !(self->skip_len && n >= self->skip_len && memcmp(s, self->skip, self->skip_len) == 0);
}

static PyObject *Lines_observe(Lines *self, PyObject *ctx) {
    if (self->python == NULL || self->on_full == NULL) {
        PyErr_SetString(PyExc_TypeError, "observe() needs Lines(..., python=, on_full=)");
        return NULL;
    }
    int is_traced = Py_TYPE(ctx) == self->ctx_type ? traced(self, ctx) : -1;
    if (is_traced == 0)
        Py_RETURN_NONE;
    if (is_traced > 0) {
        int rc = append_line(self, ctx);
        if (rc < 0)
            return NULL;
        if (rc == 0) {
            if (self->count >= self->full)
                return PyObject_CallNoArgs(self->on_full);
            Py_RETURN_NONE;
        }
    }
    return PyObject_CallOneArg(self->python, ctx);  /* a line left to Python */
}

static PyObject *Lines_take(Lines *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyBytes_FromStringAndSize(self->buf, (Py_ssize_t)self->len);
    if (out == NULL)
        return NULL;
    self->len = 0;
    self->count = 0;
    return out;
}

static Py_ssize_t Lines_length(Lines *self) { return self->count; }

static int offsets(PyTypeObject *type, PyObject *names, Py_ssize_t *out, Py_ssize_t max,
                   Py_ssize_t *count) {
    PyObject *seq = PySequence_Fast(names, "field names must be a sequence");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > max) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %zd fields", max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (name == NULL || member_offset(type, name, &out[i]) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    if (count)
        *count = n;
    return 0;
}

static int Lines_init(Lines *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"version", "ctx_type", "fields", "times", "span_type",
                             "claim_type", "prefix", "skip", "python", "on_full", "full",
                             "bodies", "omit", NULL};
    long version;
    PyObject *ctx_type, *fields, *times, *span_type, *claim_type;
    PyObject *python = NULL, *on_full = NULL, *omit = NULL;
    int bodies = 1;
    const char *prefix = "", *skip = "";
    Py_ssize_t prefix_len = 0, skip_len = 0, full = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "lO!OOO!O!|$s#s#OOnpO", kwlist, &version,
                                     &PyType_Type, &ctx_type, &fields, &times, &PyType_Type,
                                     &span_type, &PyType_Type, &claim_type, &prefix,
                                     &prefix_len, &skip, &skip_len, &python, &on_full, &full,
                                     &bodies, &omit))
        return -1;
    if ((size_t)prefix_len >= sizeof self->prefix || (size_t)skip_len >= sizeof self->skip) {
        PyErr_SetString(PyExc_ValueError, "prefix and skip: 63 bytes at most");
        return -1;
    }
    if ((python != NULL && !PyCallable_Check(python)) ||
        (on_full != NULL && !PyCallable_Check(on_full)) || full < 1) {
        PyErr_SetString(PyExc_TypeError, "python and on_full must be callable, full >= 1");
        return -1;
    }
    memcpy(self->prefix, prefix, (size_t)prefix_len);
    self->prefix_len = (size_t)prefix_len;
    memcpy(self->skip, skip, (size_t)skip_len);
    self->skip_len = (size_t)skip_len;
    self->full = full;
    Py_XINCREF(python);
    Py_XSETREF(self->python, python);
    Py_XINCREF(on_full);
    Py_XSETREF(self->on_full, on_full);
    if (version < 0) {
        PyErr_SetString(PyExc_ValueError, "version must be >= 0");
        return -1;
    }
    PyTypeObject *ct = (PyTypeObject *)ctx_type, *st = (PyTypeObject *)span_type;
    PyTypeObject *lt = (PyTypeObject *)claim_type;
    if (offsets(ct, fields, self->fields, MAX_FIELDS, &self->nfields) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < self->nfields; i++) {  /* fields named in ``times`` */
        PyObject *name = PySequence_GetItem(fields, i);
        int found = name == NULL ? -1 : PySequence_Contains(times, name);
        Py_XDECREF(name);
        if (found < 0)
            return -1;
        self->relative[i] = (unsigned char)found;
        int omitted = 0;
        if (omit != NULL && omit != Py_None) {
            name = PySequence_GetItem(fields, i);
            omitted = name == NULL ? -1 : PySequence_Contains(omit, name);
            Py_XDECREF(name);
            if (omitted < 0)
                return -1;
        }
        self->omitted[i] = (unsigned char)omitted;
    }
    self->bodies = bodies;
    if (member_offset(ct, "received_at", &self->received_at) < 0 ||
        member_offset(ct, "endpoint", &self->endpoint) < 0 ||
        member_offset(ct, "claim", &self->claim) < 0 ||
        member_offset(ct, "spans", &self->spans) < 0 ||
        member_offset(ct, "body", &self->body) < 0 ||
        member_offset(ct, "raw_body", &self->raw_body) < 0 ||
        member_offset(ct, "response_body", &self->response_body) < 0 ||
        member_offset(ct, "chunks", &self->chunks) < 0 ||
        member_offset(lt, "priority", &self->priority) < 0 ||
        member_offset(lt, "tenant", &self->tenant) < 0 ||
        member_offset(st, "name", &self->span_name) < 0 ||
        member_offset(st, "start", &self->span_start) < 0 ||
        member_offset(st, "end", &self->span_end) < 0 ||
        member_offset(st, "attrs", &self->span_attrs) < 0)
        return -1;
    self->version = version;
    Py_INCREF(ct);
    Py_XSETREF(self->ctx_type, ct);
    Py_INCREF(st);
    Py_XSETREF(self->span_type, st);
    Py_INCREF(lt);
    Py_XSETREF(self->claim_type, lt);
    self->len = 0;
    self->count = 0;
    return 0;
}

/* The callables are usually a Spool's bound methods, and the Spool holds this: a cycle. */
static int Lines_traverse(Lines *self, visitproc visit, void *arg) {
    Py_VISIT(self->python);
    Py_VISIT(self->on_full);
    Py_VISIT(self->ctx_type);
    Py_VISIT(self->span_type);
    Py_VISIT(self->claim_type);
    return 0;
}

static int Lines_clear(Lines *self) {
    Py_CLEAR(self->python);
    Py_CLEAR(self->on_full);
    Py_CLEAR(self->ctx_type);
    Py_CLEAR(self->span_type);
    Py_CLEAR(self->claim_type);
    return 0;
}

static void Lines_dealloc(Lines *self) {
    PyObject_GC_UnTrack(self);
    Lines_clear(self);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Lines_nbytes(Lines *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSize_t(self->len);
}

static PyMethodDef Lines_methods[] = {
    {"observe", (PyCFunction)Lines_observe, METH_O,
     "observe(ctx): appends the line of a traced endpoint's ctx, calls on_full() once "
     "`full` lines are held; a line it cannot write goes to python(ctx)"},
    {"add", (PyCFunction)Lines_add, METH_O,
     "add(ctx) -> int: appends ctx's line; the lines now held, or 0 when the line is left "
     "to Python's encoder (nothing of it is kept)"},
    {"take", (PyCFunction)Lines_take, METH_NOARGS,
     "take() -> bytes: the lines held, which are cleared"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Lines_getset[] = {
    {"nbytes", (getter)Lines_nbytes, NULL, "bytes held", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Lines_as_sequence = {
    .sq_length = (lenfunc)Lines_length,
};

static PyTypeObject LinesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bastion.observe._spoolc.Lines",
    .tp_doc = "Lines(version, ctx_type, fields, times, span_type, claim_type): a chunk of "
              "spool lines being encoded",
    .tp_basicsize = sizeof(Lines),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Lines_traverse,
    .tp_clear = (inquiry)Lines_clear,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lines_init,
    .tp_dealloc = (destructor)Lines_dealloc,
    .tp_free = PyObject_GC_Del,
    .tp_methods = Lines_methods,
    .tp_getset = Lines_getset,
    .tp_as_sequence = &Lines_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spoolc", "The trace spool's line encoder, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__spoolc(void) {
    for (int c = 0; c < 0x20; c++)
        ESCAPE[c] = 1;
    ESCAPE['"'] = ESCAPE['\\'] = 1;
    if (PyType_Ready(&LinesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LinesType);
    if (PyModule_AddObject(m, "Lines", (PyObject *)&LinesType) < 0) {
        Py_DECREF(&LinesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
