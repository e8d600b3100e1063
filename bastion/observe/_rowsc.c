/* The metrics observer in C: adds one finished request to its row of the request table
 * (bastion/observe/metrics.py, Metrics.observe, which stays the reference and the
 * fallback).
 *
 * The table is the same Python dict of row key -> list of floats that Metrics renders, so
 * nothing else changes. observe() first reads and checks everything it needs from the
 * context (its slots, by offset) and only then writes the row: a context it cannot read
 * (a value of an unexpected type, an int beyond 64 bits, no finished_at) goes whole to
 * python(ctx), so no request is counted twice or half.
 *
 * One thread only (the event loop's): it runs under the GIL and calls no Python code but
 * str() of an unusual status code and the python(ctx) fallback.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_slots.h"

#define SECTIONS 6
#define MAX_BUCKETS 32

enum { DUR, OVH, TIN, TOUT, TTFT, TPOT };  /* the histograms, in Metrics' order */

typedef struct {
    Py_ssize_t start, n;  /* counts at start..start+n (the last is +Inf), the sum after */
    double bounds[MAX_BUCKETS];
} Section;

typedef struct {
    PyObject_HEAD
    PyObject *rows, *operations, *error_types, *status_names, *python;
    PyObject *providers, *prices;  /* replaced on a reload (Metrics.sample) */
    PyObject *empty, *stream_error, *zero;
    PyObject *prompt_key, *completion_key, *details_key, *cached_key;
    PyTypeObject *ctx_type;
    Py_ssize_t row_size, requests, retries, cost, cached;
    Section sections[SECTIONS];
    Py_ssize_t operation, endpoint, backend, status, error, model, provider, received_at,
        finished_at, stream, backend_started_at, backend_headers_at, backend_done_at,
        attempts, usage, first_token_at, last_token_at;
} Rows;

/* ------------------------------------------------------------------ reading */

/* A str field for the key: itself when non-empty, NULL for None or "" (the caller's
 * default), ``bad`` set for anything else. */
static inline PyObject *text_or_null(PyObject *value, int *bad) {
    if (value == Py_None)
        return NULL;
    if (!PyUnicode_Check(value)) {
        *bad = 1;
        return NULL;
    }
    return PyUnicode_GET_LENGTH(value) ? value : NULL;
}

/* A time: 1 and *out for a float that is not 0.0, 0 for None or 0.0 (Python's ``or``
 * takes the default), -1 for anything else. */
static inline int time_of(PyObject *value, double *out) {
    if (value == Py_None)
        return 0;
    if (!PyFloat_CheckExact(value))
        return -1;
    *out = PyFloat_AS_DOUBLE(value);
    return *out != 0.0;
}

/* An int of the usage dict: 1 and *out for an exact int, 0 for anything else (Python's
 * ``x.__class__ is int``), -1 beyond 64 bits. */
static inline int token_count(PyObject *value, long long *out) {
    if (value == NULL || !PyLong_CheckExact(value))
        return 0;
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    return 1;
}

/* ------------------------------------------------------------------ writing */

static inline int bump(PyObject *row, Py_ssize_t i, double by) {
    PyObject *old = PyList_GET_ITEM(row, i);
    double value = PyFloat_CheckExact(old) ? PyFloat_AS_DOUBLE(old) : PyFloat_AsDouble(old);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    PyObject *new = PyFloat_FromDouble(value + by);
    if (new == NULL)
        return -1;
    PyList_SET_ITEM(row, i, new);
    Py_DECREF(old);
    return 0;
}

/* bisect_left: the first bucket whose bound is >= x (n for none; 0 for nan, as Python) */
static inline Py_ssize_t bucket(const Section *s, double x) {
    Py_ssize_t lo = 0, hi = s->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (s->bounds[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static inline int observe_into(Rows *self, PyObject *row, int which, double x) {
    const Section *s = &self->sections[which];
    if (bump(row, s->start + bucket(s, x), 1.0) < 0)
        return -1;
    return bump(row, s->start + s->n + 1, x);
}

/* ------------------------------------------------------------------ observe */

static PyObject *fallback(Rows *self, PyObject *ctx) {
    return PyObject_CallOneArg(self->python, ctx);
}

#define FIELD(name) slot(ctx, self->name)

static PyObject *Rows_observe(Rows *self, PyObject *ctx) {
    if (Py_TYPE(ctx) != self->ctx_type)
        return fallback(self, ctx);
    const Py_ssize_t read[] = {
        self->operation, self->endpoint, self->backend, self->status, self->error,
        self->model, self->provider, self->received_at, self->finished_at, self->stream,
        self->backend_started_at, self->backend_headers_at, self->backend_done_at,
        self->attempts, self->usage, self->first_token_at, self->last_token_at,
    };
    for (size_t i = 0; i < sizeof read / sizeof read[0]; i++)
        if (slot(ctx, read[i]) == NULL)  /* a deleted field: Python raises for it */
            return fallback(self, ctx);
    int bad = 0;
    PyObject *operation = text_or_null(FIELD(operation), &bad);
    if (bad)
        return fallback(self, ctx);
    if (operation == NULL) {
        PyObject *endpoint = FIELD(endpoint);
        operation = PyDict_GetItemWithError(self->operations, endpoint);
        if (operation == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;  /* health, admin, /metrics: not a GenAI operation */
        }
    }
    PyObject *deployment = text_or_null(FIELD(backend), &bad);
    PyObject *model = text_or_null(FIELD(model), &bad);
    PyObject *provider = text_or_null(FIELD(provider), &bad);
    PyObject *status = FIELD(status), *stream = FIELD(stream), *usage = FIELD(usage);
    if (bad || !PyLong_CheckExact(status) || (stream != Py_True && stream != Py_False) ||
        (usage != Py_None && !PyDict_Check(usage)))
        return fallback(self, ctx);
    long code = PyLong_AsLong(status);
    if (code == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return fallback(self, ctx);
    }
    int is_stream = stream == Py_True;
    double finished, started = 0, headers = 0, done = 0, first = 0, last = 0;
    int has_headers, has_done, has_last;
    if (!PyFloat_CheckExact(FIELD(received_at)) || time_of(FIELD(finished_at), &finished) != 1 ||
        time_of(FIELD(backend_started_at), &started) < 0 ||
        (has_headers = time_of(FIELD(backend_headers_at), &headers)) < 0 ||
        (has_done = time_of(FIELD(backend_done_at), &done)) < 0 ||
        time_of(FIELD(first_token_at), &first) < 0 ||
        (has_last = time_of(FIELD(last_token_at), &last)) < 0)
        return fallback(self, ctx);  /* no finished_at: Python reads the clock */
    double received = PyFloat_AS_DOUBLE(FIELD(received_at));
    /* Python tests these two with ``is None``, not ``or``: 0.0 counts */
    int has_started = FIELD(backend_started_at) != Py_None;
    int has_first = FIELD(first_token_at) != Py_None;
    long long attempts = 0, prompt = 0, completion = 0, cached = 0;
    if (token_count(FIELD(attempts), &attempts) != 1)
        return fallback(self, ctx);
    int has_prompt = 0, has_completion = 0, has_cached = 0;
    int has_usage = usage != Py_None && PyDict_GET_SIZE(usage) > 0;
    if (has_usage) {
        has_prompt = token_count(PyDict_GetItemWithError(usage, self->prompt_key), &prompt);
        has_completion = token_count(PyDict_GetItemWithError(usage, self->completion_key),
                                     &completion);
        if (PyErr_Occurred() || has_prompt < 0 || has_completion < 0) {
            PyErr_Clear();
            return fallback(self, ctx);
        }
        PyObject *details = PyDict_GetItemWithError(usage, self->details_key);
        if (has_prompt && details != NULL && PyDict_CheckExact(details)) {
            has_cached = token_count(PyDict_GetItemWithError(details, self->cached_key),
                                     &cached);
            if (PyErr_Occurred() || has_cached < 0) {
                PyErr_Clear();
                return fallback(self, ctx);
            }
        }
        if (PyErr_Occurred())
            return NULL;
        if (has_cached && cached > prompt)  /* an unread count stays 0 */
            cached = prompt;
    }
    PyObject *dep = deployment != NULL ? deployment : self->empty;
    double price[3] = {0, 0, 0};
    PyObject *priced = PyDict_GetItemWithError(self->prices, dep);
    if (priced == NULL && PyErr_Occurred())
        return NULL;
    if (priced != NULL) {
        if (!PyTuple_Check(priced) || PyTuple_GET_SIZE(priced) != 3)
            return fallback(self, ctx);
        for (int i = 0; i < 3; i++) {
            price[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(priced, i));
            if (price[i] == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return fallback(self, ctx);
            }
        }
    }

    /* the key: (operation, model, provider, deployment, status, error) */
    PyObject *prov = provider;
    if (prov == NULL) {
        prov = PyDict_GetItemWithError(self->providers, dep);
        if (prov == NULL) {
            if (PyErr_Occurred())
                return NULL;
            prov = self->empty;
        }
    }
    PyObject *status_name = PyDict_GetItemWithError(self->status_names, status);
    PyObject *owned_name = NULL, *owned_error = NULL, *error;
    if (status_name == NULL || !PyObject_IsTrue(status_name)) {
        if (PyErr_Occurred())
            return NULL;
        status_name = owned_name = PyObject_Str(status);
        if (status_name == NULL)
            return NULL;
    }
    if (code >= 400) {
        error = PyDict_GetItemWithError(self->error_types, status);
        if (error == NULL || !PyObject_IsTrue(error)) {
            if (PyErr_Occurred()) {
                Py_XDECREF(owned_name);
                return NULL;
            }
            error = owned_error = PyObject_Str(status);
            if (error == NULL) {
                Py_XDECREF(owned_name);
                return NULL;
            }
        }
    } else
        error = FIELD(error) == Py_None ? self->empty : self->stream_error;
    int no_error = error == self->empty;  /* an error type of a status is never empty */
    PyObject *key = PyTuple_Pack(6, operation, model != NULL ? model : self->empty, prov, dep,
                                 status_name, error);
    Py_XDECREF(owned_name);
    Py_XDECREF(owned_error);
    if (key == NULL)
        return NULL;
    PyObject *row = PyDict_GetItemWithError(self->rows, key);  /* borrowed */
    if (row == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return NULL;
        }
        row = PyList_New(self->row_size);
        if (row == NULL) {
            Py_DECREF(key);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < self->row_size; i++) {
            Py_INCREF(self->zero);
            PyList_SET_ITEM(row, i, self->zero);
        }
        int rc = PyDict_SetItem(self->rows, key, row);
        Py_DECREF(row);  /* the dict holds it */
        if (rc < 0) {
            Py_DECREF(key);
            return NULL;
        }
    }
    Py_DECREF(key);
    if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != self->row_size) {
        PyErr_SetString(PyExc_ValueError, "a metrics row of the wrong shape");
        return NULL;
    }

    /* the row: the same updates, in the same order, as Metrics.observe */
    if (bump(row, self->requests, 1.0) < 0)
        return NULL;
    if (observe_into(self, row, DUR, finished - received) < 0)
        return NULL;
    /* ctx.overhead(finished): elapsed less the wait for the backend (for a stream, until
       its last event, else its headers: the generation is the backend's time) */
    double overhead = finished - received;
    if (has_started) {
        double waited = finished;
        if (is_stream ? (has_last || has_headers) : has_done)
            waited = is_stream ? (has_last ? last : headers) : done;
        overhead -= waited - started;
        overhead = overhead > 0.0 ? overhead : 0.0;
    }
    if (observe_into(self, row, OVH, overhead) < 0)
        return NULL;
    if (attempts > 1 && bump(row, self->retries, (double)(attempts - 1)) < 0)
        return NULL;
    if (!has_usage)
        Py_RETURN_NONE;
    if (has_prompt) {
        if (observe_into(self, row, TIN, (double)prompt) < 0)
            return NULL;
        if (has_cached && bump(row, self->cached, (double)cached) < 0)
            return NULL;
    }
    if (has_completion && observe_into(self, row, TOUT, (double)completion) < 0)
        return NULL;
    if (is_stream && no_error && has_first) {
        if (observe_into(self, row, TTFT, first - received) < 0)
            return NULL;
        if (completion > 1) {
            double gap = (has_last ? last : finished) - first;
            double tpot = (gap > 0.0 ? gap : 0.0) / (double)(completion - 1);
            if (observe_into(self, row, TPOT, tpot) < 0)
                return NULL;
        }
    }
    if (priced != NULL &&
        bump(row, self->cost, ((double)(prompt - cached) * price[0] + (double)cached * price[2]
                               + (double)completion * price[1]) / 1000000.0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ the type */

static int section_of(Section *s, PyObject *spec) {
    PyObject *bounds;  /* spec: (start, bounds) */
    if (!PyArg_ParseTuple(spec, "nO;a section is (start, bounds)", &s->start, &bounds))
        return -1;
    PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence");
    if (seq == NULL)
        return -1;
    s->n = PySequence_Fast_GET_SIZE(seq);
    if (s->n > MAX_BUCKETS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d buckets", MAX_BUCKETS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < s->n; i++) {
        s->bounds[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (s->bounds[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int Rows_init(Rows *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ctx_type", "rows", "operations", "error_types", "status_names",
                             "providers", "prices", "counters", "sections", "row_size",
                             "python", NULL};
    PyObject *ctx_type, *rows, *operations, *error_types, *status_names, *providers, *prices;
    PyObject *sections, *python;
    Py_ssize_t row_size;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "O!O!O!O!O!O!O!(nnnn)OnO", kwlist, &PyType_Type, &ctx_type,
            &PyDict_Type, &rows, &PyDict_Type, &operations, &PyDict_Type, &error_types,
            &PyDict_Type, &status_names, &PyDict_Type, &providers, &PyDict_Type, &prices,
            &self->requests, &self->retries, &self->cost, &self->cached, &sections,
            &row_size, &python))
        return -1;
    if (!PyCallable_Check(python)) {
        PyErr_SetString(PyExc_TypeError, "python must be callable");
        return -1;
    }
    PyObject *seq = PySequence_Fast(sections, "sections must be a sequence");
    if (seq == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != SECTIONS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%d sections: duration, overhead, input and output "
                     "tokens, time to first token, time per output token", SECTIONS);
        return -1;
    }
    for (int i = 0; i < SECTIONS; i++)
        if (section_of(&self->sections[i], PySequence_Fast_GET_ITEM(seq, i)) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    Py_DECREF(seq);
    self->row_size = row_size;
    Py_ssize_t slots[] = {self->requests, self->retries, self->cost, self->cached};
    for (int i = 0; i < 4; i++)
        if (slots[i] < 0 || slots[i] >= row_size) {
            PyErr_SetString(PyExc_ValueError, "a counter slot outside the row");
            return -1;
        }
    for (int i = 0; i < SECTIONS; i++)
        if (self->sections[i].start < 0 ||
            self->sections[i].start + self->sections[i].n + 1 >= row_size) {
            PyErr_SetString(PyExc_ValueError, "a histogram section outside the row");
            return -1;
        }
    PyTypeObject *ct = (PyTypeObject *)ctx_type;
    struct { const char *name; Py_ssize_t *offset; } fields[] = {
        {"operation", &self->operation}, {"endpoint", &self->endpoint},
        {"backend", &self->backend}, {"status", &self->status}, {"error", &self->error},
        {"model", &self->model}, {"provider", &self->provider},
        {"received_at", &self->received_at}, {"finished_at", &self->finished_at},
        {"stream", &self->stream}, {"backend_started_at", &self->backend_started_at},
        {"backend_headers_at", &self->backend_headers_at},
        {"backend_done_at", &self->backend_done_at}, {"attempts", &self->attempts},
        {"usage", &self->usage}, {"first_token_at", &self->first_token_at},
        {"last_token_at", &self->last_token_at},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (member_offset(ct, fields[i].name, fields[i].offset) < 0)
            return -1;
    PyObject *strings[6] = {
        PyUnicode_InternFromString(""), PyUnicode_InternFromString("stream_error"),
        PyUnicode_InternFromString("prompt_tokens"),
        PyUnicode_InternFromString("completion_tokens"),
        PyUnicode_InternFromString("prompt_tokens_details"),
        PyUnicode_InternFromString("cached_tokens"),
    };
    PyObject *zero = PyFloat_FromDouble(0.0);
    for (int i = 0; i < 6; i++)
        if (strings[i] == NULL)
            zero = NULL;
    if (zero == NULL) {
        for (int i = 0; i < 6; i++)
            Py_XDECREF(strings[i]);
        return -1;
    }
    Py_XSETREF(self->empty, strings[0]);
    Py_XSETREF(self->stream_error, strings[1]);
    Py_XSETREF(self->prompt_key, strings[2]);
    Py_XSETREF(self->completion_key, strings[3]);
    Py_XSETREF(self->details_key, strings[4]);
    Py_XSETREF(self->cached_key, strings[5]);
    Py_XSETREF(self->zero, zero);
    Py_INCREF(ct);
    Py_XSETREF(self->ctx_type, ct);
    PyObject **refs[] = {&self->rows, &self->operations, &self->error_types,
                         &self->status_names, &self->providers, &self->prices, &self->python};
    PyObject *values[] = {rows, operations, error_types, status_names, providers, prices,
                          python};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*refs[i], values[i]);
    }
    return 0;
}

static int Rows_traverse(Rows *self, visitproc visit, void *arg) {
    Py_VISIT(self->rows);
    Py_VISIT(self->python);
    Py_VISIT(self->providers);
    Py_VISIT(self->prices);
    Py_VISIT(self->operations);
    Py_VISIT(self->error_types);
    Py_VISIT(self->status_names);
    Py_VISIT(self->ctx_type);
    return 0;
}

static int Rows_clear(Rows *self) {
    Py_CLEAR(self->rows);
    Py_CLEAR(self->python);
    Py_CLEAR(self->providers);
    Py_CLEAR(self->prices);
    Py_CLEAR(self->operations);
    Py_CLEAR(self->error_types);
    Py_CLEAR(self->status_names);
    Py_CLEAR(self->ctx_type);
    return 0;
}

static void Rows_dealloc(Rows *self) {
    PyObject_GC_UnTrack(self);
    Rows_clear(self);
    Py_CLEAR(self->empty);
    Py_CLEAR(self->stream_error);
    Py_CLEAR(self->zero);
    Py_CLEAR(self->prompt_key);
    Py_CLEAR(self->completion_key);
    Py_CLEAR(self->details_key);
    Py_CLEAR(self->cached_key);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* providers and prices: replaced (as a whole) when a reload changes the deployments */
static int set_dict(PyObject **field, PyObject *value) {
    if (value == NULL || !PyDict_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a dict");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(*field, value);
    return 0;
}

static PyObject *get_providers(Rows *self, void *Py_UNUSED(c)) {
    return Py_NewRef(self->providers);
}

static int put_providers(Rows *self, PyObject *value, void *Py_UNUSED(c)) {
    return set_dict(&self->providers, value);
}

static PyObject *get_prices(Rows *self, void *Py_UNUSED(c)) { return Py_NewRef(self->prices); }

static int put_prices(Rows *self, PyObject *value, void *Py_UNUSED(c)) {
    return set_dict(&self->prices, value);
}

static PyMethodDef Rows_methods[] = {
    {"observe", (PyCFunction)Rows_observe, METH_O,
     "observe(ctx): adds a finished request to its row (python(ctx) for one it cannot "
     "read)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Rows_getset[] = {
    {"providers", (getter)get_providers, (setter)put_providers, "deployment -> backend kind",
     NULL},
    {"prices", (getter)get_prices, (setter)put_prices,
     "deployment -> (input, output, cached) USD per 1M tokens", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bastion.observe._rowsc.Rows",
    .tp_doc = "Rows(ctx_type, rows, operations, error_types, status_names, providers, "
              "prices, counters, sections, row_size, python): the request table's observer",
    .tp_basicsize = sizeof(Rows),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Rows_traverse,
    .tp_clear = (inquiry)Rows_clear,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Rows_init,
    .tp_dealloc = (destructor)Rows_dealloc,
    .tp_free = PyObject_GC_Del,
    .tp_methods = Rows_methods,
    .tp_getset = Rows_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowsc", "The metrics request table's observer, in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__rowsc(void) {
    if (PyType_Ready(&RowsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RowsType);
    if (PyModule_AddObject(m, "Rows", (PyObject *)&RowsType) < 0) {
        Py_DECREF(&RowsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
