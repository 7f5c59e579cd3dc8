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

/* ---- the summary's pass (hwsim.engine.summary._summarize) ------------------- */

/* d[key] = d.get(key, dflt) + n, or + n * k when k is given (the Python loop's
   statement, on the same objects: the same sums) */
static int add_to(PyObject *d, PyObject *key, PyObject *dflt, PyObject *n, PyObject *k)
{
    PyObject *old = PyDict_GetItemWithError(d, key);
    if (!old) {
        if (PyErr_Occurred())
            return -1;
        old = dflt;
    }
    PyObject *term = n, *sum;
    if (k) {
        term = PyNumber_Multiply(n, k);
        if (!term)
            return -1;
    }
    if (PyFloat_CheckExact(old) && PyFloat_CheckExact(term))
        sum = PyFloat_FromDouble(PyFloat_AS_DOUBLE(old) + PyFloat_AS_DOUBLE(term));
    else
        sum = PyNumber_Add(old, term);
    if (k)
        Py_DECREF(term);
    if (!sum)
        return -1;
    int rc = PyDict_SetItem(d, key, sum);
    Py_DECREF(sum);
    return rc;
}

/* for level, n in mapping.items(): add_to(...) */
static int add_items(PyObject *into, PyObject *mapping, PyObject *dflt, PyObject *k)
{
    if (PyDict_CheckExact(mapping)) {
        Py_ssize_t pos = 0;
        PyObject *key, *n;
        while (PyDict_Next(mapping, &pos, &key, &n)) {
            /* (the dict is not changed while walked: into is another one) */
            if (add_to(into, key, dflt, n, k) < 0)
                return -1;
        }
        return 0;
    }
    PyObject *items = PyObject_CallMethod(mapping, "items", NULL);
    if (!items)
        return -1;
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    if (!it)
        return -1;
    PyObject *pair;
    while ((pair = PyIter_Next(it))) {
        PyObject *key, *n;
        if (!PyArg_UnpackTuple(pair, "items", 2, 2, &key, &n)
            || add_to(into, key, dflt, n, k) < 0) {
            Py_DECREF(pair);
            Py_DECREF(it);
            return -1;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* a > b, on floats without a call */
static int greater(PyObject *a, PyObject *b)
{
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b))
        return PyFloat_AS_DOUBLE(a) > PyFloat_AS_DOUBLE(b);
    return PyObject_RichCompareBool(a, b, Py_GT);
}

/* the resource's entry [busy seconds, {bound: seconds}, earliest start] takes a task */
static int add_busy(PyObject *busy, PyObject *key, PyObject *start, PyObject *seconds,
                    PyObject *bound, PyObject *zero_f)
{
    PyObject *entry = PyDict_GetItemWithError(busy, key);
    if (!entry) {
        if (PyErr_Occurred())
            return -1;
        PyObject *by = PyDict_New();
        if (!by)
            return -1;
        Py_INCREF(zero_f);
        Py_INCREF(start);
        entry = PyList_New(3);
        if (!entry) {
            Py_DECREF(by); Py_DECREF(zero_f); Py_DECREF(start);
            return -1;
        }
        PyList_SET_ITEM(entry, 0, zero_f);
        PyList_SET_ITEM(entry, 1, by);
        PyList_SET_ITEM(entry, 2, start);
        int rc = PyDict_SetItem(busy, key, entry);
        Py_DECREF(entry);  /* (busy holds it) */
        if (rc < 0)
            return -1;
    } else if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 3) {
        PyErr_SetString(PyExc_SystemError, "summarize: a busy entry changed");
        return -1;
    } else {
        PyObject *first = PyList_GET_ITEM(entry, 2);  /* start < entry[2] */
        int lt = PyFloat_CheckExact(first) && PyFloat_CheckExact(start)
            ? PyFloat_AS_DOUBLE(start) < PyFloat_AS_DOUBLE(first)
            : PyObject_RichCompareBool(start, first, Py_LT);
        if (lt < 0)
            return -1;
        if (lt) {
            Py_INCREF(start);
            PyList_SetItem(entry, 2, start);
        }
    }
    PyObject *total = PyList_GET_ITEM(entry, 0), *sum;
    if (PyFloat_CheckExact(total) && PyFloat_CheckExact(seconds))
        sum = PyFloat_FromDouble(PyFloat_AS_DOUBLE(total) + PyFloat_AS_DOUBLE(seconds));
    else
        sum = PyNumber_InPlaceAdd(total, seconds);
    if (!sum)
        return -1;
    PyList_SetItem(entry, 0, sum);  /* (steals sum) */
    return add_to(PyList_GET_ITEM(entry, 1), bound, zero_f, seconds, NULL);
}

PyDoc_STRVAR(summarize_doc,
"summarize(tasks, critical_path) -> (nbytes, actions, finish, busy) or None\n\n"
"The loop of hwsim.engine.summary._summarize over tasks (tuples of Task's ten\n"
"fields), on the same objects with the same operations in the same order:\n"
"the bytes and actions summed, the critical path's finish of each task (None\n"
"without critical_path), and busy (unit or ('pool', name) -> [busy seconds,\n"
"{bound: seconds}, earliest start]). None where a task is not a tuple of ten\n"
"(the Python loop then runs).");

static PyObject *summarize(PyObject *self, PyObject *args)
{
    PyObject *tasks_o;
    int critical_path;
    if (!PyArg_ParseTuple(args, "Op", &tasks_o, &critical_path))
        return NULL;
    PyObject *tasks = PySequence_Fast(tasks_o, "tasks");
    if (!tasks)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(tasks);
    PyObject **items = PySequence_Fast_ITEMS(tasks);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyTuple_Check(items[i]) || PyTuple_GET_SIZE(items[i]) != 10) {
            Py_DECREF(tasks);
            Py_RETURN_NONE;
        }
    }
    PyObject *nbytes = PyDict_New(), *actions = PyDict_New(), *busy = PyDict_New();
    PyObject *finish = critical_path ? PyList_New(n) : NULL;
    PyObject *zero_i = PyLong_FromLong(0), *one = PyLong_FromLong(1);
    PyObject *zero_f = PyFloat_FromDouble(0.0), *pool_s = PyUnicode_FromString("pool");
    PyObject *result = NULL, *start = NULL;
    if (!nbytes || !actions || !busy || (critical_path && !finish) || !zero_i || !one
        || !zero_f || !pool_s)
        goto done;
    if (finish)
        Py_SET_SIZE(finish, 0);  /* (it grows as Python's append does; see below) */
    start = zero_f;
    Py_INCREF(start);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = items[i];
        PyObject *unit = PyTuple_GET_ITEM(t, 0), *d = PyTuple_GET_ITEM(t, 1);
        PyObject *t_bytes = PyTuple_GET_ITEM(t, 2), *t_actions = PyTuple_GET_ITEM(t, 3);
        PyObject *deps = PyTuple_GET_ITEM(t, 4), *bound = PyTuple_GET_ITEM(t, 5);
        PyObject *pool = PyTuple_GET_ITEM(t, 6), *k = PyTuple_GET_ITEM(t, 8);
        PyObject *serial = PyTuple_GET_ITEM(t, 9);
        int truth, k_is_1 = -1;
        /* each copy counts its bytes and actions */
        if ((truth = PyObject_IsTrue(t_bytes)) < 0)
            goto done;
        if (truth) {
            if ((k_is_1 = PyObject_RichCompareBool(k, one, Py_EQ)) < 0)
                goto done;
            if (add_items(nbytes, t_bytes, zero_i, k_is_1 ? NULL : k) < 0)
                goto done;
        }
        if ((truth = PyObject_IsTrue(t_actions)) < 0)
            goto done;
        if (truth) {
            if (k_is_1 < 0 && (k_is_1 = PyObject_RichCompareBool(k, one, Py_EQ)) < 0)
                goto done;
            if (add_items(actions, t_actions, zero_f, k_is_1 ? NULL : k) < 0)
                goto done;
        }
        if (critical_path) {
            Py_INCREF(zero_f);
            Py_SETREF(start, zero_f);
            PyObject *it = PyObject_GetIter(deps), *j;
            if (!it)
                goto done;
            while ((j = PyIter_Next(it))) {
                PyObject *f = PyObject_GetItem(finish, j);  /* finish[j], as Python's */
                Py_DECREF(j);
                if (!f) {
                    Py_DECREF(it);
                    goto done;
                }
                int gt = greater(f, start);
                if (gt < 0) {
                    Py_DECREF(f);
                    Py_DECREF(it);
                    goto done;
                }
                if (gt)
                    Py_SETREF(start, f);
                else
                    Py_DECREF(f);
            }
            Py_DECREF(it);
            if (PyErr_Occurred())
                goto done;
            PyObject *e = PyFloat_CheckExact(start) && PyFloat_CheckExact(d)
                ? PyFloat_FromDouble(PyFloat_AS_DOUBLE(start) + PyFloat_AS_DOUBLE(d))
                : PyNumber_Add(start, d);
            if (!e)
                goto done;
            /* (finish holds the tasks before this one, as Python's list when it appends:
               a later or negative index reads what Python's reads; the slots past the
               size, allocated by PyList_New, are not seen) */
            PyList_SET_ITEM(finish, i, e);
            Py_SET_SIZE(finish, i + 1);
        }
        /* a copy has a unit of its own, unless the copies take turns on this one */
        PyObject *seconds;
        if ((truth = PyObject_IsTrue(serial)) < 0)
            goto done;
        if (truth) {
            if (!(seconds = PyNumber_Multiply(d, k)))
                goto done;
        } else {
            Py_INCREF(d);
            seconds = d;
        }
        int rc = add_busy(busy, unit, start, seconds, bound, zero_f);
        Py_DECREF(seconds);
        if (rc < 0)
            goto done;
        if ((truth = PyObject_IsTrue(pool)) < 0)
            goto done;
        if (truth) {  /* each copy holds a pool slot */
            if (!(seconds = PyNumber_Multiply(d, k)))
                goto done;
            PyObject *key = PyTuple_Pack(2, pool_s, pool);
            rc = key ? add_busy(busy, key, start, seconds, bound, zero_f) : -1;
            Py_XDECREF(key);
            Py_DECREF(seconds);
            if (rc < 0)
                goto done;
        }
    }
    result = PyTuple_Pack(4, nbytes, actions, critical_path ? finish : Py_None, busy);
done:
    Py_XDECREF(start);
    Py_XDECREF(nbytes); Py_XDECREF(actions); Py_XDECREF(busy); Py_XDECREF(finish);
    Py_XDECREF(zero_i); Py_XDECREF(one); Py_XDECREF(zero_f); Py_XDECREF(pool_s);
    Py_DECREF(tasks);
    return result;
}

/* ---- the summary's bound over the resources (hwsim.engine.summary._busy_bound) --- */

/* x as a double where it is a float (exact type), else -1 (the Python loop runs) */
static int float_of(PyObject *x, double *out)
{
    if (!PyFloat_CheckExact(x))
        return -1;
    *out = PyFloat_AS_DOUBLE(x);
    return 0;
}

PyDoc_STRVAR(busy_bound_doc,
"busy_bound(busy, capacity, head, tail, path_s) -> (latency, work, top) or None\n\n"
"The loop of hwsim.engine.summary._busy_bound over busy's entries, in their\n"
"order, with the same double operations in the same order: each resource's\n"
"head + busy seconds per slot + tail against the latency (from path_s), its\n"
"busy seconds less its latency-bound ones per slot against the work (from 0.0),\n"
"and the first resource of the largest busy time per slot. head and tail: dicts\n"
"or None (empty). None where a number is not a float, a slot count not an int\n"
"from 1 to 2**53, or an entry not a list [seconds, {bound: seconds}, ...]: the\n"
"Python loop then runs (and raises what it raises).");

static PyObject *busy_bound(PyObject *self, PyObject *args)
{
    PyObject *busy, *capacity, *head, *tail, *path_o;
    if (!PyArg_ParseTuple(args, "OOOOO", &busy, &capacity, &head, &tail, &path_o))
        return NULL;
    double latency, work = 0.0, top_s = 0.0;
    if (!PyDict_CheckExact(busy) || !PyDict_CheckExact(capacity)
        || (head != Py_None && !PyDict_CheckExact(head))
        || (tail != Py_None && !PyDict_CheckExact(tail)) || float_of(path_o, &latency) < 0)
        Py_RETURN_NONE;
    if (head != Py_None && PyDict_GET_SIZE(head) == 0)  /* (Python's `if head:`) */
        head = Py_None;
    if (tail != Py_None && PyDict_GET_SIZE(tail) == 0)
        tail = Py_None;
    static PyObject *latency_s = NULL;  /* the bound "latency", interned once */
    if (!latency_s && !(latency_s = PyUnicode_InternFromString("latency")))
        return NULL;
    PyObject *top = NULL, *key, *entry;
    Py_ssize_t pos = 0;
    while (PyDict_Next(busy, &pos, &key, &entry)) {
        double total, slots = 1.0, share, t, h, lat = 0.0, w;
        if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) < 2
            || float_of(PyList_GET_ITEM(entry, 0), &total) < 0
            || !PyDict_CheckExact(PyList_GET_ITEM(entry, 1)))
            Py_RETURN_NONE;
        PyObject *by = PyList_GET_ITEM(entry, 1), *got;
        if (PyTuple_CheckExact(key)) {  /* a pool: its slots, at least 1 for the share */
            if (PyTuple_GET_SIZE(key) < 2)
                Py_RETURN_NONE;
            got = PyDict_GetItemWithError(capacity, PyTuple_GET_ITEM(key, 1));
            if (!got && PyErr_Occurred())
                return NULL;
            if (got) {
                if (!PyLong_CheckExact(got))
                    Py_RETURN_NONE;
                long long n = PyLong_AsLongLong(got);
                if (n == -1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    Py_RETURN_NONE;
                }
                if (n < 1 || n > (1LL << 53))
                    Py_RETURN_NONE;
                slots = (double)n;
            }
            share = total / slots;  /* (total / (slots if slots > 1 else 1)) */
        } else {
            share = total;
        }
        if (!top || share > top_s) {
            top = key;
            top_s = share;
        }
        t = total / slots;
        if (head != Py_None) {
            got = PyDict_GetItemWithError(head, key);
            if (!got && PyErr_Occurred())
                return NULL;
            if (got) {
                if (float_of(got, &h) < 0)
                    Py_RETURN_NONE;
                if (h != 0.0)  /* (`if h:`, NaN included) */
                    t = h + t;
            }
        }
        if (tail != Py_None) {
            got = PyDict_GetItemWithError(tail, key);
            if (!got && PyErr_Occurred())
                return NULL;
            if (got) {
                if (float_of(got, &h) < 0)
                    Py_RETURN_NONE;
                if (h != 0.0)
                    t = t + h;
            }
        }
        if (t > latency)
            latency = t;
        got = PyDict_GetItemWithError(by, latency_s);
        if (!got && PyErr_Occurred())
            return NULL;
        if (got && float_of(got, &lat) < 0)
            Py_RETURN_NONE;
        w = (total - lat) / slots;
        if (w > work)
            work = w;
    }
    return Py_BuildValue("ddO", latency, work, top ? top : Py_None);
}

/* ---- the latest finish (max() of a summary's finish list) ------------------------ */

PyDoc_STRVAR(latest_doc,
"latest(finish) -> the item max(finish) returns, or None\n\n"
"max() of a list of floats without a call per item: the first item of the\n"
"largest, as max() keeps it (an item replaces the one kept only when greater;\n"
"a NaN first item is kept), the same object. None where the list is empty or\n"
"holds other than floats (max() then runs).");

static PyObject *latest(PyObject *self, PyObject *arg)
{
    if (!PyList_CheckExact(arg) || PyList_GET_SIZE(arg) == 0)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(arg);
    PyObject **items = ((PyListObject *)arg)->ob_item;
    PyObject *best = items[0];
    if (!PyFloat_CheckExact(best))
        Py_RETURN_NONE;
    double b = PyFloat_AS_DOUBLE(best);
    for (Py_ssize_t i = 1; i < n; i++) {
        PyObject *x = items[i];
        if (!PyFloat_CheckExact(x))
            Py_RETURN_NONE;
        if (PyFloat_AS_DOUBLE(x) > b) {
            best = x;
            b = PyFloat_AS_DOUBLE(x);
        }
    }
    Py_INCREF(best);
    return best;
}

/* ---- list scheduling onto the least loaded worker (hwsim.engine.deal.deal) ----- */

typedef struct { double load; long long worker; } Slot;

/* (load, worker) < (load, worker), as Python compares the tuples (no NaN here) */
static int slot_less(const Slot *a, const Slot *b)
{
    return a->load == b->load ? a->worker < b->worker : a->load < b->load;
}

/* heapq.heapreplace's sift, step for step (the C heapq's siftup, then siftdown) */
static void slot_replace(Slot *h, Py_ssize_t n, Slot it)
{
    Py_ssize_t pos = 0, limit = n >> 1;
    h[0] = it;
    while (pos < limit) {
        Py_ssize_t child = 2 * pos + 1;
        if (child + 1 < n && !slot_less(&h[child], &h[child + 1]))
            child += 1;
        Slot tmp = h[child];
        h[child] = h[pos];
        h[pos] = tmp;
        pos = child;
    }
    Slot item = h[pos];
    while (pos > 0) {
        Py_ssize_t parent = (pos - 1) >> 1;
        if (!slot_less(&item, &h[parent]))
            break;
        h[pos] = h[parent];
        h[parent] = item;
        pos = parent;
    }
}

PyDoc_STRVAR(deal_doc,
"deal(free, costs, items, repeat, bins) -> True or None\n\n"
"The loop of hwsim.engine.deal.deal: `repeat` times over costs and items in\n"
"turn, each item to the least loaded worker of the heap free ((load, worker)\n"
"tuples, as heapq keeps them): bins[worker].append(item) unless item is None,\n"
"and the worker's load plus the cost back in the heap, with heapq's sift, so\n"
"free ends as the Python loop leaves it. None, with nothing changed, where a\n"
"load or cost is not a float or is NaN, a worker not an int indexing bins, or\n"
"a bin not a list.");

static PyObject *deal(PyObject *self, PyObject *args)
{
    PyObject *free_o, *costs_o, *items_o, *bins_o;
    Py_ssize_t repeat;
    if (!PyArg_ParseTuple(args, "OOOnO", &free_o, &costs_o, &items_o, &repeat, &bins_o))
        return NULL;
    if (!PyList_CheckExact(free_o) || !PyList_CheckExact(costs_o) || !PyList_CheckExact(items_o)
        || !PyList_CheckExact(bins_o) || PyList_GET_SIZE(costs_o) != PyList_GET_SIZE(items_o)
        || repeat < 0)
        Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(free_o), m = PyList_GET_SIZE(costs_o);
    Py_ssize_t n_bins = PyList_GET_SIZE(bins_o);
    if (n == 0)
        Py_RETURN_NONE;
    for (Py_ssize_t b = 0; b < n_bins; b++)
        if (!PyList_CheckExact(PyList_GET_ITEM(bins_o, b)))
            Py_RETURN_NONE;
    Slot *h = PyMem_Malloc(n * sizeof(Slot));
    double *cost = PyMem_Malloc((m ? m : 1) * sizeof(double));
    if (!h || !cost) {
        PyMem_Free(h);
        PyMem_Free(cost);
        return PyErr_NoMemory();
    }
    PyObject *result = Py_None;
    for (Py_ssize_t i = 0; i < n && result; i++) {
        PyObject *it = PyList_GET_ITEM(free_o, i);
        if (!PyTuple_CheckExact(it) || PyTuple_GET_SIZE(it) != 2
            || float_of(PyTuple_GET_ITEM(it, 0), &h[i].load) < 0 || h[i].load != h[i].load
            || !PyLong_CheckExact(PyTuple_GET_ITEM(it, 1))) {
            result = NULL;
            break;
        }
        h[i].worker = PyLong_AsLongLong(PyTuple_GET_ITEM(it, 1));
        if ((h[i].worker == -1 && PyErr_Occurred()) || h[i].worker < 0
            || h[i].worker >= n_bins) {
            PyErr_Clear();
            result = NULL;
        }
    }
    for (Py_ssize_t j = 0; j < m && result; j++)
        if (float_of(PyList_GET_ITEM(costs_o, j), &cost[j]) < 0 || cost[j] != cost[j])
            result = NULL;
    if (!result) {  /* (not dealt here: the Python loop runs) */
        PyMem_Free(h);
        PyMem_Free(cost);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t r = 0; r < repeat; r++) {
        for (Py_ssize_t j = 0; j < m; j++) {
            Slot least = h[0];
            PyObject *item = PyList_GET_ITEM(items_o, j);
            if (item != Py_None
                && PyList_Append(PyList_GET_ITEM(bins_o, least.worker), item) < 0) {
                PyMem_Free(h);
                PyMem_Free(cost);
                return NULL;
            }
            least.load = least.load + cost[j];
            slot_replace(h, n, least);
        }
    }
    /* free as the Python loop leaves it: the heap's (load, worker) tuples in order */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *tup = Py_BuildValue("(dL)", h[i].load, h[i].worker);
        if (!tup) {
            PyMem_Free(h);
            PyMem_Free(cost);
            return NULL;
        }
        if (PyList_SetItem(free_o, i, tup) < 0) {
            PyMem_Free(h);
            PyMem_Free(cost);
            return NULL;
        }
    }
    PyMem_Free(h);
    PyMem_Free(cost);
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, run_doc},
    {"summarize", summarize, METH_VARARGS, summarize_doc},
    {"busy_bound", busy_bound, METH_VARARGS, busy_bound_doc},
    {"deal", deal, METH_VARARGS, deal_doc},
    {"latest", latest, METH_O, latest_doc},
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
