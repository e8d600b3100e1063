/* The in-memory rate limiter's request path in C (bastion/governance/limits.py, which
 * stays the reference and the fallback).
 *
 * State is one scope's buckets (requests and tokens per minute, refilled together) and
 * its requests in flight: the same attributes and methods as limits.py's Python _State,
 * so the Python code (a new scope, a refusal, the sweep) uses it unchanged.
 *
 * admit(table, scopes, body, body_bytes, now, parallel) is the common case only: every
 * scope's state already in ``table`` and none refusing. It first refills and checks every
 * scope, and only then takes from them, so when it cannot decide (a state to make, a limit
 * reached, a value of an unexpected type) it returns None having changed nothing but the
 * refill (which the Python path repeats as a no-op: same ``now``) and Python decides,
 * raising the right 429. What it admits it returns as a Grant: the ticket's attributes
 * (tokens, headers, held, reserved, done) and its settle(usage).
 *
 * One thread only (the event loop's): it runs under the GIL and calls no Python code but
 * the body's dict lookups.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

#define MAX_SCOPES 8

typedef struct {
    PyObject_HEAD
    PyObject *limits;        /* (rpm, tpm, max_parallel), each int or None */
    double rpm, tpm, most;   /* the same, 0 for None */
    double requests, tokens, stamp;
    Py_ssize_t inflight;
} State;

typedef struct {
    PyObject_HEAD
    double tokens;
    PyObject *headers, *held, *reserved;  /* list of (name, value); tuples of State */
    char done;
} Grant;

static PyTypeObject State_Type, Grant_Type;
static PyObject *LIMIT_REQUESTS, *REMAINING_REQUESTS, *RESET_REQUESTS, *LIMIT_TOKENS,
    *REMAINING_TOKENS, *RESET_TOKENS, *ZERO, *MAX_TOKENS, *MAX_COMPLETION_TOKENS,
    *TOTAL_TOKENS, *PROMPT_TOKENS, *COMPLETION_TOKENS, *EMPTY_TUPLE;

/* ------------------------------------------------------------------ limits */

/* A limit: 1 and *out for an int or a float (0 for 0), 0 for None, -1 (an error set)
 * for anything else. */
static int limit_of(PyObject *value, double *out) {
    if (value == Py_None) {
        *out = 0.0;
        return 0;
    }
    if (PyLong_Check(value) || PyFloat_Check(value)) {
        *out = PyFloat_AsDouble(value);
        if (*out == -1.0 && PyErr_Occurred())
            return -1;
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "a limit is an int or None, not %.100s",
                 Py_TYPE(value)->tp_name);
    return -1;
}

/* Parses (rpm, tpm, max_parallel) into three doubles; -1 with an error set. */
static int parse_limits(PyObject *limits, double *rpm, double *tpm, double *most) {
    if (!PyTuple_Check(limits) || PyTuple_GET_SIZE(limits) != 3) {
        PyErr_SetString(PyExc_TypeError, "limits are a tuple (rpm, tpm, max_parallel)");
        return -1;
    }
    if (limit_of(PyTuple_GET_ITEM(limits, 0), rpm) < 0 ||
        limit_of(PyTuple_GET_ITEM(limits, 1), tpm) < 0 ||
        limit_of(PyTuple_GET_ITEM(limits, 2), most) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ State */

/* The state's limits become ``limits`` (parsed; -1 with an error set, nothing changed). */
static int set_limits(State *self, PyObject *limits) {
    double rpm, tpm, most;
    if (parse_limits(limits, &rpm, &tpm, &most) < 0)
        return -1;
    Py_INCREF(limits);
    Py_XSETREF(self->limits, limits);
    self->rpm = rpm;
    self->tpm = tpm;
    self->most = most;
    return 0;
}

static int State_init(State *self, PyObject *args, PyObject *kwds) {
    PyObject *limits;
    double now;
    static char *names[] = {"limits", "now", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Od", names, &limits, &now))
        return -1;
    if (set_limits(self, limits) < 0)
        return -1;
    self->requests = self->rpm;
    self->tokens = self->tpm;
    self->stamp = now;
    self->inflight = 0;
    return 0;
}

static void State_dealloc(State *self) {
    Py_XDECREF(self->limits);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* limits.py's _State.refill: a changed limit keeps what was used; then the buckets
 * refill at a sixtieth of their limit a second, up to it. */
static int refill(State *self, PyObject *limits, double now) {
    if (limits != self->limits) {
        /* NULL: made by State.__new__ without __init__ */
        int same = self->limits ? PyObject_RichCompareBool(limits, self->limits, Py_EQ) : 1;
        if (same < 0)
            return -1;
        double rpm = self->rpm, tpm = self->tpm;
        if (set_limits(self, limits) < 0)
            return -1;
        if (!same) {  /* changed: keep what was used */
            self->requests += self->rpm - rpm;
            self->tokens += self->tpm - tpm;
        }
    }
    double elapsed = now - self->stamp;
    if (elapsed > 0) {
        self->stamp = now;
        if (self->rpm) {
            double level = self->requests + elapsed * self->rpm / 60;
            self->requests = level < self->rpm ? level : self->rpm;
        }
        if (self->tpm) {
            double level = self->tokens + elapsed * self->tpm / 60;
            self->tokens = level < self->tpm ? level : self->tpm;
        }
    }
    return 0;
}

static PyObject *State_refill(State *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "refill(limits, now)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (refill(self, args[0], now) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *State_idle(State *self, PyObject *unused) {
    return PyBool_FromLong(!self->inflight && (!self->rpm || self->requests >= self->rpm) &&
                           (!self->tpm || self->tokens >= self->tpm));
}

static PyObject *State_get_limits(State *self, void *closure) {
    return Py_NewRef(self->limits ? self->limits : Py_None);
}

static int State_set_limits(State *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "limits cannot be deleted");
        return -1;
    }
    return set_limits(self, value);
}

static PyMethodDef State_methods[] = {
    {"refill", (PyCFunction)(void (*)(void))State_refill, METH_FASTCALL,
     "refill(limits, now): a changed limit keeps what was used; then refill to now."},
    {"idle", (PyCFunction)State_idle, METH_NOARGS,
     "Full and nothing in flight: the same as a new state."},
    {NULL}};

static PyMemberDef State_members[] = {
    {"requests", T_DOUBLE, offsetof(State, requests), 0, NULL},
    {"tokens", T_DOUBLE, offsetof(State, tokens), 0, NULL},
    {"stamp", T_DOUBLE, offsetof(State, stamp), 0, NULL},
    {"inflight", T_PYSSIZET, offsetof(State, inflight), 0, NULL},
    {NULL}};

static PyGetSetDef State_getset[] = {
    {"limits", (getter)State_get_limits, (setter)State_set_limits, NULL, NULL}, {NULL}};

static PyTypeObject State_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bastion.governance._limitsc.State",
    .tp_basicsize = sizeof(State),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "State(limits, now): one scope's buckets and requests in flight.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)State_init,
    .tp_dealloc = (destructor)State_dealloc,
    .tp_methods = State_methods,
    .tp_members = State_members,
    .tp_getset = State_getset,
};

/* ------------------------------------------------------------------ Grant */

static void Grant_dealloc(Grant *self) {
    Py_XDECREF(self->headers);
    Py_XDECREF(self->held);
    Py_XDECREF(self->reserved);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A usage count: its value for an int or a float (not a bool), else -1. */
static double count_of(PyObject *usage, PyObject *name) {
    PyObject *value = PyDict_GetItemWithError(usage, name);
    if (value == NULL || PyBool_Check(value))
        return -1.0;
    if (PyLong_Check(value) || PyFloat_Check(value)) {
        double out = PyFloat_AsDouble(value);
        if (out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();  /* an int beyond a double: not a count */
            return -1.0;
        }
        return out;
    }
    return -1.0;
}

/* limits.py's used_tokens: total_tokens, else prompt + completion (what is not a number
 * counts 0). */
static double used_of(PyObject *usage) {
    double total = count_of(usage, TOTAL_TOKENS);
    if (total >= 0 || PyErr_Occurred())
        return total;
    double prompt = count_of(usage, PROMPT_TOKENS);
    double completion = count_of(usage, COMPLETION_TOKENS);
    return (prompt > 0 ? prompt : 0.0) + (completion > 0 ? completion : 0.0);
}

static PyObject *Grant_settle(Grant *self, PyObject *usage) {
    if (self->done)
        Py_RETURN_NONE;
    self->done = 1;
    Py_ssize_t n = PyTuple_GET_SIZE(self->held);
    for (Py_ssize_t i = 0; i < n; i++) {
        State *state = (State *)PyTuple_GET_ITEM(self->held, i);
        if (state->inflight > 0)
            state->inflight -= 1;
    }
    n = PyTuple_GET_SIZE(self->reserved);
    if (!n || usage == Py_None || !PyDict_Check(usage) || !PyDict_GET_SIZE(usage))
        Py_RETURN_NONE;
    double used = used_of(usage);
    if (PyErr_Occurred())
        return NULL;
    double back = self->tokens - used;
    for (Py_ssize_t i = 0; i < n; i++) {
        State *state = (State *)PyTuple_GET_ITEM(self->reserved, i);
        double level = state->tokens + back;
        state->tokens = level < state->tpm ? level : state->tpm;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Grant_methods[] = {
    {"settle", (PyCFunction)Grant_settle, METH_O,
     "settle(usage): frees the places in flight and gives back the unused tokens."},
    {NULL}};

static PyMemberDef Grant_members[] = {
    {"tokens", T_DOUBLE, offsetof(Grant, tokens), READONLY, NULL},
    {"headers", T_OBJECT, offsetof(Grant, headers), READONLY, NULL},
    {"held", T_OBJECT, offsetof(Grant, held), READONLY, NULL},
    {"reserved", T_OBJECT, offsetof(Grant, reserved), READONLY, NULL},
    {"done", T_BOOL, offsetof(Grant, done), 0, NULL},
    {NULL}};

static PyTypeObject Grant_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bastion.governance._limitsc.Grant",
    .tp_basicsize = sizeof(Grant),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What admit() admitted: a ticket, as limits.py's Ticket.",
    .tp_dealloc = (destructor)Grant_dealloc,
    .tp_methods = Grant_methods,
    .tp_members = Grant_members,
};

/* ------------------------------------------------------------------ headers */

/* The decimal digits of ``v`` (>= 0) followed by ``suffix``, as bytes (what
 * PyBytes_FromFormat would give, without its printf: a third of the instructions). */
static PyObject *decimal(long long v, const char *suffix) {
    char buf[48];
    char *end = buf + sizeof(buf) - 8, *p = end;
    unsigned long long u = v < 0 ? 0 : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    Py_ssize_t n = end - p;
    while (*suffix)
        p[n++] = *suffix++;
    return PyBytes_FromStringAndSize(p, n);
}

/* limits.py's _duration: OpenAI's reset format, ``1s``, ``250ms``, ``6m0s``. */
static PyObject *duration(double seconds) {
    if (seconds < 1) {
        if (!(seconds > 0))
            return PyBytes_FromStringAndSize("0ms", 3);
        return decimal((long long)ceil(seconds * 1000), "ms");
    }
    double whole = ceil(seconds);
    if (whole < 60)
        return decimal((long long)whole, "s");
    /* what admit() formats is at most a minute (nothing admitted leaves a bucket in
     * debt); clamped all the same */
    long long w = whole < 9e18 ? (long long)whole : 9000000000000000000LL;
    PyObject *minutes = decimal(w / 60, "m"), *rest = decimal(w % 60, "s");
    if (minutes == NULL || rest == NULL) {
        Py_XDECREF(minutes);
        Py_XDECREF(rest);
        return NULL;
    }
    PyBytes_ConcatAndDel(&minutes, rest);
    return minutes;
}

static PyObject *pair(PyObject *name, PyObject *value) {
    if (value == NULL)
        return NULL;
    PyObject *out = PyTuple_Pack(2, name, value);
    Py_DECREF(value);
    return out;
}

/* Appends the three x-ratelimit-* headers of one kind; -1 on an error. */
static int add_headers(PyObject *list, PyObject *limit_name, PyObject *remaining_name,
                       PyObject *reset_name, double limit, double left) {
    PyObject *items[3];
    items[0] = pair(limit_name, decimal((long long)limit, ""));
    items[1] = left > 0 ? pair(remaining_name, decimal((long long)left, ""))
                        : PyTuple_Pack(2, remaining_name, ZERO);
    items[2] = pair(reset_name, duration((limit - left) * 60 / limit));
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        if (items[i] == NULL || PyList_Append(list, items[i]) < 0)
            failed = 1;
        Py_XDECREF(items[i]);
    }
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ admit */

/* limits.py's estimate: the prompt (the body's size / 4) plus max_tokens (or
 * max_completion_tokens); 0 and *ok = 0 when a value is not a plain int. */
static double estimate(PyObject *body, Py_ssize_t body_bytes, int *ok) {
    PyObject *out = PyDict_GetItemWithError(body, MAX_TOKENS);
    if (out == NULL || !PyObject_IsTrue(out)) {
        if (PyErr_Occurred())
            goto bad;
        out = PyDict_GetItemWithError(body, MAX_COMPLETION_TOKENS);
        if (out == NULL || !PyObject_IsTrue(out)) {
            if (PyErr_Occurred())
                goto bad;
            out = NULL;
        }
    }
    double more = 0.0;
    if (out != NULL) {
        if (!PyLong_CheckExact(out))
            goto bad;
        more = PyLong_AsDouble(out);
        if (more == -1.0 && PyErr_Occurred())
            goto bad;
    }
    *ok = 1;
    return (double)body_bytes / 4 + more;
bad:
    PyErr_Clear();
    *ok = 0;
    return 0.0;
}

static PyObject *admit(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "admit(table, scopes, body, body_bytes, now, parallel)");
        return NULL;
    }
    PyObject *table = args[0], *scopes = args[1], *body = args[2];
    if (!PyDict_Check(table) || !PyList_Check(scopes) || !PyDict_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "admit(dict, list, dict, int, float, bool)");
        return NULL;
    }
    Py_ssize_t body_bytes = PyLong_AsSsize_t(args[3]);
    if (body_bytes == -1 && PyErr_Occurred())
        return NULL;
    double now = PyFloat_AsDouble(args[4]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    int parallel = PyObject_IsTrue(args[5]);
    if (parallel < 0)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(scopes);
    if (n > MAX_SCOPES)
        Py_RETURN_NONE;
    State *states[MAX_SCOPES];
    double wanted = -1.0;
    /* every scope: refilled and checked, nothing taken */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *scope = PyList_GET_ITEM(scopes, i);
        if (!PyTuple_Check(scope) || PyTuple_GET_SIZE(scope) != 4)
            Py_RETURN_NONE;
        PyObject *state = PyDict_GetItemWithError(table, PyTuple_GET_ITEM(scope, 0));
        if (state == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;  /* a new scope: Python makes its state */
        }
        if (Py_TYPE(state) != &State_Type)
            Py_RETURN_NONE;
        State *s = states[i] = (State *)state;
        if (refill(s, PyTuple_GET_ITEM(scope, 3), now) < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (s->rpm && s->requests < 1)
            Py_RETURN_NONE;
        if (s->tpm) {
            if (wanted < 0) {
                int ok;
                wanted = estimate(body, body_bytes, &ok);
                if (!ok)
                    Py_RETURN_NONE;
            }
            if (wanted > s->tpm || s->tokens < wanted)
                Py_RETURN_NONE;
        }
        if (parallel && s->most && (double)s->inflight >= s->most)
            Py_RETURN_NONE;
    }
    /* every scope admits: take from each */
    PyObject *held[MAX_SCOPES], *reserved[MAX_SCOPES];
    Py_ssize_t n_held = 0, n_reserved = 0;
    double rpm_of = 0, tpm_of = 0, requests_left = INFINITY, tokens_left = INFINITY;
    for (Py_ssize_t i = 0; i < n; i++) {
        State *s = states[i];
        if (s->rpm) {
            double left = s->requests = s->requests - 1;
            if (left < requests_left) {
                rpm_of = s->rpm;
                requests_left = left;
            }
        }
        if (s->tpm) {
            double left = s->tokens = s->tokens - wanted;
            reserved[n_reserved++] = (PyObject *)s;
            if (left < tokens_left) {
                tpm_of = s->tpm;
                tokens_left = left;
            }
        }
        if (parallel && s->most) {
            s->inflight += 1;
            held[n_held++] = (PyObject *)s;
        }
    }
    Grant *grant = PyObject_New(Grant, &Grant_Type);
    if (grant == NULL)
        goto undo;
    grant->tokens = n_reserved ? wanted : 0.0;
    grant->done = 0;
    grant->headers = PyList_New(0);
    grant->held = n_held ? PyTuple_New(n_held) : Py_NewRef(EMPTY_TUPLE);
    grant->reserved = n_reserved ? PyTuple_New(n_reserved) : Py_NewRef(EMPTY_TUPLE);
    if (grant->headers == NULL || grant->held == NULL || grant->reserved == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n_held; i++)
        PyTuple_SET_ITEM(grant->held, i, Py_NewRef(held[i]));
    for (Py_ssize_t i = 0; i < n_reserved; i++)
        PyTuple_SET_ITEM(grant->reserved, i, Py_NewRef(reserved[i]));
    if (rpm_of && add_headers(grant->headers, LIMIT_REQUESTS, REMAINING_REQUESTS,
                              RESET_REQUESTS, rpm_of, requests_left) < 0)
        goto fail;
    if (tpm_of && add_headers(grant->headers, LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS,
                              tpm_of, tokens_left) < 0)
        goto fail;
    return (PyObject *)grant;
fail:
    /* the grant's settle gives back its places; its tokens and requests as well */
    grant->done = 1;
    Py_DECREF(grant);
undo:
    for (Py_ssize_t i = 0; i < n; i++) {
        State *s = states[i];
        if (s->rpm)
            s->requests += 1;
        if (s->tpm)
            s->tokens += wanted;
        if (parallel && s->most)
            s->inflight -= 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef module_methods[] = {
    {"admit", (PyCFunction)(void (*)(void))admit, METH_FASTCALL,
     "admit(table, scopes, body, body_bytes, now, parallel) -> Grant | None: the request "
     "admitted on every scope, or None (nothing taken) when Python must decide."},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_limitsc", "The rate limiter's request path in C.", -1,
    module_methods};

static PyObject *bytes(const char *text) { return PyBytes_FromString(text); }

PyMODINIT_FUNC PyInit__limitsc(void) {
    if (PyType_Ready(&State_Type) < 0 || PyType_Ready(&Grant_Type) < 0)
        return NULL;
    LIMIT_REQUESTS = bytes("x-ratelimit-limit-requests");
    REMAINING_REQUESTS = bytes("x-ratelimit-remaining-requests");
    RESET_REQUESTS = bytes("x-ratelimit-reset-requests");
    LIMIT_TOKENS = bytes("x-ratelimit-limit-tokens");
    REMAINING_TOKENS = bytes("x-ratelimit-remaining-tokens");
    RESET_TOKENS = bytes("x-ratelimit-reset-tokens");
    ZERO = bytes("0");
    MAX_TOKENS = PyUnicode_InternFromString("max_tokens");
    MAX_COMPLETION_TOKENS = PyUnicode_InternFromString("max_completion_tokens");
    TOTAL_TOKENS = PyUnicode_InternFromString("total_tokens");
    PROMPT_TOKENS = PyUnicode_InternFromString("prompt_tokens");
    COMPLETION_TOKENS = PyUnicode_InternFromString("completion_tokens");
    EMPTY_TUPLE = PyTuple_New(0);
    if (!LIMIT_REQUESTS || !REMAINING_REQUESTS || !RESET_REQUESTS || !LIMIT_TOKENS ||
        !REMAINING_TOKENS || !RESET_TOKENS || !ZERO || !MAX_TOKENS ||
        !MAX_COMPLETION_TOKENS || !TOTAL_TOKENS || !PROMPT_TOKENS || !COMPLETION_TOKENS ||
        !EMPTY_TUPLE)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&State_Type);
    Py_INCREF(&Grant_Type);
    if (PyModule_AddObject(module, "State", (PyObject *)&State_Type) < 0 ||
        PyModule_AddObject(module, "Grant", (PyObject *)&Grant_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
