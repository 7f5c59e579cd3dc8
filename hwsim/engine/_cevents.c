/* The event loop of hwsim.engine.events._run_events, compiled.
 *
 * An optional speed-up: hwsim.engine.events runs this loop when the module is
 * built and the same loop in Python when it is not (or when
 * HWSIM_PURE_PYTHON=1 / events.COMPILED = False), with the same schedule to
 * the last bit. The Python loop is the reference; this file follows it line
 * by line (the comments name its branches) and tests/test_engine_compiled.py
 * holds the two equal on random task graphs and lowered ops.
 *
 * Why the same to the last bit: every time is a sum `now + duration` of two
 * IEEE doubles, done once per task start in both (C doubles on SSE2, no
 * x87 extended precision, no -ffast-math), and events are taken in the same
 * order: the heap is ordered by (time, creation number), a total order, so
 * any correct heap pops the same sequence as Python's heapq; the present
 * time's FIFO, the eager grants and the releases not made are the Python
 * loop's own rules.
 *
 * What it knows: unit and pool numbers, durations, slots, dependencies; no
 * machine (the engine is domain-free). Bad input is told by Python
 * (events._explain): a dependency that is not an earlier task makes run()
 * return None before anything runs; every other check is done in Python before
 * the call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

/* event kinds, as in events.py */
enum { WAKE, UNIT_GRANT, POOL_GRANT, END, UNIT_FREE, POOL_FREE, DONE };

typedef struct { double t; Py_ssize_t eid; Py_ssize_t x; } HeapItem;

static int heap_less(const HeapItem *a, const HeapItem *b)
{
    return a->t < b->t || (a->t == b->t && a->eid < b->eid);
}

static void heap_push(HeapItem *h, Py_ssize_t *len, HeapItem it)
{
    Py_ssize_t i = (*len)++;
    while (i > 0) {
        Py_ssize_t p = (i - 1) >> 1;
        if (!heap_less(&it, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static HeapItem heap_pop(HeapItem *h, Py_ssize_t *len)
{
    HeapItem top = h[0], last = h[--(*len)];
    Py_ssize_t n = *len, i = 0;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (n > 0)
        h[i] = last;
    return top;
}

/* a sequence of n Python ints (or n floats) into a C array; -1 on error */
static int ints_from(PyObject *seq, Py_ssize_t n, Py_ssize_t *out, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items", what, n);
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsSsize_t(items[i]);
        if (out[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static int doubles_from(PyObject *seq, Py_ssize_t n, double *out)
{
    PyObject *fast = PySequence_Fast(seq, "durations");
    if (!fast)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_SetString(PyExc_ValueError, "durations: wrong length");
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = items[i];
        /* a float as it is; an int as Python's float + int converts it; any other
           type (a numpy scalar: its sums are its own) is left to the Python loop */
        if (PyFloat_CheckExact(o)) {
            out[i] = PyFloat_AS_DOUBLE(o);
            continue;
        }
        if (!PyLong_CheckExact(o)) {
            PyErr_SetString(PyExc_TypeError, "durations: float or int expected");
            Py_DECREF(fast);
            return -1;
        }
        out[i] = PyLong_AsDouble(o);
        if (out[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *doubles_tuple(const double *v, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    if (!t)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (!f) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, f);
    }
    return t;
}

PyDoc_STRVAR(run_doc,
"run(unit_of, n_units, durations, deps_of, pool_of, slots, pool_cap, eager)\n"
"-> (starts, ends) or None\n\n"
"The event loop of hwsim.engine.events._run_events on its prepared columns:\n"
"unit_of (each task's unit number, 0 to n_units - 1), durations (how long\n"
"each holds its unit), deps_of (each task's dependencies, earlier tasks),\n"
"pool_of (each task's pool number, -1 for none), slots (the pool slots each\n"
"holds; read only for a pool's tasks), pool_cap (each pool's slots), eager\n"
"(no task has a pool). Returns the tuples of starts and ends, or None where a\n"
"dependency is not an earlier task (Python then tells which).");

static PyObject *run(PyObject *self, PyObject *args)
{
    PyObject *unit_of_o, *durs_o, *deps_o, *pool_of_o, *slots_o, *cap_o;
    Py_ssize_t n_units;
    int eager;
    if (!PyArg_ParseTuple(args, "OnOOOOOp", &unit_of_o, &n_units, &durs_o, &deps_o,
                          &pool_of_o, &slots_o, &cap_o, &eager))
        return NULL;
    Py_ssize_t n = PyObject_Length(unit_of_o);
    Py_ssize_t n_pools = PyObject_Length(cap_o);
    if (n < 0 || n_pools < 0)
        return NULL;
    if (n_units < 0) {
        PyErr_SetString(PyExc_ValueError, "n_units < 0");
        return NULL;
    }

    PyObject *result = NULL, *deps_fast = NULL;
    Py_ssize_t *unit_of = NULL, *pool_of = NULL, *slots = NULL, *pool_cap = NULL;
    Py_ssize_t *missing = NULL, *w_start = NULL, *w_list = NULL, *unit_head = NULL;
    Py_ssize_t *unit_tail = NULL, *pool_head = NULL, *pool_tail = NULL;
    Py_ssize_t *unit_next = NULL, *pool_next = NULL, *pool_used = NULL, *fifo = NULL;
    char *unit_busy = NULL;
    double *dur = NULL, *starts = NULL, *ends = NULL;
    HeapItem *heap = NULL;

    size_t nn = (size_t)n + 1, nu = (size_t)n_units + 1, np = (size_t)n_pools + 1;
    unit_of = PyMem_Malloc(nn * sizeof(Py_ssize_t));
    pool_of = PyMem_Malloc(nn * sizeof(Py_ssize_t));
    slots = PyMem_Malloc(nn * sizeof(Py_ssize_t));
    pool_cap = PyMem_Malloc(np * sizeof(Py_ssize_t));
    missing = PyMem_Calloc(nn, sizeof(Py_ssize_t));
    w_start = PyMem_Calloc(nn + 1, sizeof(Py_ssize_t));
    unit_head = PyMem_Malloc(nu * sizeof(Py_ssize_t));
    unit_tail = PyMem_Malloc(nu * sizeof(Py_ssize_t));
    unit_busy = PyMem_Calloc(nu, 1);
    pool_head = PyMem_Malloc(np * sizeof(Py_ssize_t));
    pool_tail = PyMem_Malloc(np * sizeof(Py_ssize_t));
    pool_used = PyMem_Calloc(np, sizeof(Py_ssize_t));
    unit_next = PyMem_Malloc(nn * sizeof(Py_ssize_t));
    pool_next = PyMem_Malloc(nn * sizeof(Py_ssize_t));
    /* the FIFO's events, at most 8 per task (a wake-up, a unit's grant, a pool's
       grant, an end, a unit's release, a pool's release, a completion; the first
       wake-ups): a plain array, never wrapped */
    fifo = PyMem_Malloc((8 * nn) * 2 * sizeof(Py_ssize_t));
    dur = PyMem_Malloc(nn * sizeof(double));
    starts = PyMem_Calloc(nn, sizeof(double));
    ends = PyMem_Calloc(nn, sizeof(double));
    heap = PyMem_Malloc(nn * sizeof(HeapItem));
    if (!unit_of || !pool_of || !slots || !pool_cap || !missing || !w_start || !unit_head
        || !unit_tail || !unit_busy || !pool_head || !pool_tail || !pool_used || !unit_next
        || !pool_next || !fifo || !dur || !starts || !ends || !heap) {
        PyErr_NoMemory();
        goto done;
    }
    if (ints_from(unit_of_o, n, unit_of, "unit_of") < 0
        || ints_from(pool_of_o, n, pool_of, "pool_of") < 0
        || ints_from(cap_o, n_pools, pool_cap, "pool_cap") < 0
        || doubles_from(durs_o, n, dur) < 0)
        goto done;
    int any_pool = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (unit_of[i] < 0 || unit_of[i] >= n_units || pool_of[i] >= n_pools) {
            PyErr_SetString(PyExc_ValueError, "a unit or pool number out of range");
            goto done;
        }
        if (pool_of[i] >= 0)
            any_pool = 1;
    }
    if (any_pool && ints_from(slots_o, n, slots, "slots") < 0)
        goto done;

    /* the waiters of each task (compressed rows), in the order Python appends them:
       tasks in list order, each one's dependencies in their order */
    deps_fast = PySequence_Fast(deps_o, "deps_of");
    if (!deps_fast)
        goto done;
    if (PySequence_Fast_GET_SIZE(deps_fast) != n) {
        PyErr_SetString(PyExc_ValueError, "deps_of: wrong length");
        goto done;
    }
    PyObject **deps_items = PySequence_Fast_ITEMS(deps_fast);
    Py_ssize_t n_edges = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ds = deps_items[i];
        if (!PyTuple_Check(ds)) {
            PyErr_SetString(PyExc_TypeError, "deps_of: expected tuples");
            goto done;
        }
        Py_ssize_t k = PyTuple_GET_SIZE(ds);
        for (Py_ssize_t a = 0; a < k; a++) {
            PyObject *o = PyTuple_GET_ITEM(ds, a);
            if (!PyLong_CheckExact(o)) {  /* left to the Python loop */
                PyErr_SetString(PyExc_TypeError, "deps_of: int indices expected");
                goto done;
            }
            Py_ssize_t d = PyLong_AsSsize_t(o);
            if (d == -1 && PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                    goto done;
                PyErr_Clear();  /* (beyond any task: not an earlier one) */
            }
            if (d < 0 || d >= i) {
                Py_INCREF(Py_None);
                result = Py_None;  /* a dependency that is not an earlier task */
                goto done;
            }
            w_start[d + 1]++;
        }
        missing[i] = k;
        n_edges += k;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        w_start[i + 1] += w_start[i];
    w_list = PyMem_Malloc(((size_t)n_edges + 1) * sizeof(Py_ssize_t));
    if (!w_list) {
        PyErr_NoMemory();
        goto done;
    }
    {
        Py_ssize_t *fill = unit_next;  /* (borrowed as scratch before the run) */
        memcpy(fill, w_start, (size_t)n * sizeof(Py_ssize_t));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *ds = deps_items[i];
            Py_ssize_t k = PyTuple_GET_SIZE(ds);
            for (Py_ssize_t a = 0; a < k; a++) {
                Py_ssize_t d = PyLong_AsSsize_t(PyTuple_GET_ITEM(ds, a));
                w_list[fill[d]++] = i;
            }
        }
    }
    for (Py_ssize_t u = 0; u < n_units; u++)
        unit_head[u] = unit_tail[u] = -1;
    for (Py_ssize_t p = 0; p < n_pools; p++)
        pool_head[p] = pool_tail[p] = -1;

/* the FIFO of the present time (events.py: now_q) */
#define PUT(k, v) (fifo[2 * q_tail] = (k), fifo[2 * q_tail + 1] = (v), q_tail++)
/* the unit's and the pool's queues: lists linked through the tasks */
#define UQ_APPEND(u, t) do { unit_next[t] = -1; \
    if (unit_tail[u] < 0) { unit_head[u] = (t); } else { unit_next[unit_tail[u]] = (t); } \
    unit_tail[u] = (t); } while (0)
#define UQ_POP(u, out) do { (out) = unit_head[u]; unit_head[u] = unit_next[out]; \
    if (unit_head[u] < 0) unit_tail[u] = -1; } while (0)
#define PQ_APPEND(p, t) do { pool_next[t] = -1; \
    if (pool_tail[p] < 0) { pool_head[p] = (t); } else { pool_next[pool_tail[p]] = (t); } \
    pool_tail[p] = (t); } while (0)
#define PQ_POP(p, out) do { (out) = pool_head[p]; pool_head[p] = pool_next[out]; \
    if (pool_head[p] < 0) pool_tail[p] = -1; } while (0)

    Py_ssize_t q_head = 0, q_tail = 0, heap_len = 0, eid = 0;
    double now = 0.0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!missing[i])
            PUT(WAKE, i);
    for (;;) {
        Py_ssize_t kind, x;
        if (q_head < q_tail) {
            kind = fifo[2 * q_head];
            x = fifo[2 * q_head + 1];
            q_head++;
        } else if (heap_len) {
            q_head = q_tail = 0;  /* (the FIFO is empty: start it over) */
            HeapItem it = heap_pop(heap, &heap_len);
            now = it.t;
            x = it.x;
            while (heap_len && heap[0].t == now) {  /* the other ends due now, in order */
                HeapItem o = heap_pop(heap, &heap_len);
                PUT(END, o.x);
            }
            kind = END;
        } else {
            break;
        }
        if (kind == END) {
            if (!eager) {
                Py_ssize_t p = pool_of[x];
                if (p >= 0) {
                    pool_used[p] -= slots[x];
                    if (pool_head[p] >= 0)
                        PUT(POOL_FREE, p);
                }
            }
            Py_ssize_t u = unit_of[x];
            unit_busy[u] = 0;
            if (unit_head[u] >= 0)
                PUT(UNIT_FREE, u);
            ends[x] = now;
            if (w_start[x] < w_start[x + 1]) {
                if (q_head < q_tail) {
                    PUT(DONE, x);
                } else {  /* the completion is the next event: done here */
                    for (Py_ssize_t a = w_start[x]; a < w_start[x + 1]; a++) {
                        Py_ssize_t j = w_list[a];
                        if (!--missing[j])
                            PUT(WAKE, j);
                    }
                }
            }
        } else if (kind == WAKE || kind == UNIT_FREE) {
            Py_ssize_t j, u;
            if (kind == WAKE) {  /* all dependencies done; queue for the unit */
                u = unit_of[x];
                if (unit_busy[u]) {
                    UQ_APPEND(u, x);
                    continue;
                }
                unit_busy[u] = 1;
                if (unit_head[u] >= 0) {  /* a release's grant pending: the head first */
                    UQ_APPEND(u, x);
                    UQ_POP(u, j);
                } else {
                    j = x;
                }
            } else {  /* UNIT_FREE: x is the unit */
                u = x;
                if (unit_head[u] < 0 || unit_busy[u])
                    continue;
                unit_busy[u] = 1;
                UQ_POP(u, j);
            }
            double e = now + dur[j];
            if (pool_of[j] < 0 && ((e > now && eager) || q_head >= q_tail)) {
                starts[j] = now;  /* the grant's work done here (events.py: eager) */
                if (e > now) {
                    HeapItem it = {e, eid++, j};
                    heap_push(heap, &heap_len, it);
                } else {
                    PUT(END, j);
                }
            } else {
                PUT(UNIT_GRANT, j);
            }
        } else if (kind == DONE) {
            for (Py_ssize_t a = w_start[x]; a < w_start[x + 1]; a++) {
                Py_ssize_t j = w_list[a];
                if (!--missing[j])
                    PUT(WAKE, j);
            }
        } else if (kind == UNIT_GRANT && pool_of[x] >= 0) {  /* then its pool's queue */
            Py_ssize_t p = pool_of[x];
            PQ_APPEND(p, x);
            Py_ssize_t head = pool_head[p];
            if (pool_used[p] + slots[head] <= pool_cap[p]) {
                pool_used[p] += slots[head];
                Py_ssize_t g;
                PQ_POP(p, g);
                PUT(POOL_GRANT, g);
            }
        } else if (kind == POOL_GRANT || kind == UNIT_GRANT) {  /* the task starts */
            starts[x] = now;
            double e = now + dur[x];
            if (e > now) {
                HeapItem it = {e, eid++, x};
                heap_push(heap, &heap_len, it);
            } else {
                PUT(END, x);
            }
        } else {  /* POOL_FREE: x is the pool */
            Py_ssize_t head = pool_head[x];
            if (head >= 0 && pool_used[x] + slots[head] <= pool_cap[x]) {
                pool_used[x] += slots[head];
                Py_ssize_t g;
                PQ_POP(x, g);
                PUT(POOL_GRANT, g);
            }
        }
    }
#undef PUT
#undef UQ_APPEND
#undef UQ_POP
#undef PQ_APPEND
#undef PQ_POP
    {
        PyObject *s = doubles_tuple(starts, n), *e = s ? doubles_tuple(ends, n) : NULL;
        if (e)
            result = PyTuple_Pack(2, s, e);
        Py_XDECREF(s);
        Py_XDECREF(e);
    }
done:
    Py_XDECREF(deps_fast);
    PyMem_Free(unit_of); PyMem_Free(pool_of); PyMem_Free(slots); PyMem_Free(pool_cap);
    PyMem_Free(missing); PyMem_Free(w_start); PyMem_Free(w_list); PyMem_Free(unit_head);
    PyMem_Free(unit_tail); PyMem_Free(unit_busy); PyMem_Free(pool_head);
    PyMem_Free(pool_tail); PyMem_Free(pool_used); PyMem_Free(unit_next);
    PyMem_Free(pool_next); PyMem_Free(fifo); PyMem_Free(dur); PyMem_Free(starts);
    PyMem_Free(ends); PyMem_Free(heap);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, run_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cevents",
    "The event loop of hwsim.engine.events, compiled (optional; same schedule).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__cevents(void)
{
    PyObject *m = PyModule_Create(&module);
    /* the version of run()'s call: events.py takes the module only where it matches
       (a build left from before a change of the call is not used) */
    if (m && PyModule_AddIntConstant(m, "CALL_VERSION", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
