/* The analytical attention walk's numbers of hwsim.accelerators.ascend.cv_pipeline,
 * compiled.
 *
 * An optional speed-up: cv_pipeline._walk_sums takes its numbers from walk() here
 * when the module is built and from its Python twin when it is not (or when
 * HWSIM_PURE_PYTHON=1 / cv_pipeline.COMPILED = False), the same numbers to the
 * last bit. The Python is the reference: walk() is _step_fields (each step's
 * fields, the tiles' terms added as found) followed by _walk_numbers (the
 * per-step sums, the critical path, _k_load_parts' backward pass), line by
 * line (the comments name the Python's variables), and
 * tests/test_ascend_cwalk.py holds the two equal on random walks and on every
 * attention of a real workload.
 *
 * Why the same to the last bit: every float is the same IEEE double operation
 * on the same operands in the same order as the Python's (C doubles on SSE2 or
 * AArch64, no -ffast-math, and no multiply-add fused: setup.py compiles this
 * file with -ffp-contract=off); `a if a > b else b` is `a > b ? a : b` (the
 * same for NaN and -0.0); a float times a Python int k is the double times
 * (double)k, as Python's float multiply converts k (k and every int read here
 * at most 2**53 in magnitude, so exact); round() of a float is nearbyint() in
 * the default rounding mode (half to even, as Python's), and the rounded byte
 * counts add up as int64, as Python's ints do while they fit.
 *
 * What walk() leaves to Python: anything unusual. A block field or count that
 * is not a plain float or int (an int at most 2**53), a rounded byte count
 * that is not finite or would leave int64, a walk of no step, a negative
 * preload, an error in the stores' callback: walk() returns None and
 * _walk_sums runs the Python walk, which gives (or raises) what it gives.
 *
 * Fields: the blocks' 15 floats, read once per block (an op's 24 walks read
 * its few hundred blocks again and again; a Block, a dataclass with slots, from
 * its slots in place, where its type's fields are plain slots, any other object
 * with a getattr per field): a table keyed by the block object, holding a reference to each so
 * that no key's address is reused while it lives. One per op (the walks'
 * memo): its blocks are not changed while its walks are summed. It keeps the
 * op's stores' terms too: _store_terms (called back, in Python) is a function
 * of its arguments only, and the op's walks store a few byte counts, so each
 * (bytes, arguments) is called once per op (the Python walk: once per walk).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_OBJECT_EX: a slot's member descriptor */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* doubles computed as doubles (not in x87's 80 bits, which would round twice): where
   they are not, the module is not built, and hwsim runs the Python walk */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "_cwalk needs double arithmetic in double precision (FLT_EVAL_METHOD 0)"
#endif

#define NF 15 /* a Block's float fields, in its constructor's order (no actions) */

static const char *field_names[NF] = {
    "qk_s", "fix_s_s", "softmax_s", "pv_s", "fix_o_s", "update_s", "final_s", "load_hbm",
    "load_l2", "load_l2_slow", "mask_hbm", "pad_hbm", "pad_l2", "store_bytes", "load_v"};
static PyObject *field_strs[NF]; /* interned */

#define EXACT_INT 9007199254740992LL /* 2**53: every int up to it is a double exactly */

/* a plain float, or an int of at most 2**53 (whose Python arithmetic with floats is
   that of its double): its double; else -1 (no error set) */
static int as_double(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 0;
    }
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        if (x > EXACT_INT || x < -EXACT_INT)
            return -1;
        *out = (double)x;
        return 0;
    }
    return -1;
}

/* a Python int of at most 2**53 in magnitude as a C integer; -1 otherwise */
static int as_count(PyObject *v, Py_ssize_t *out)
{
    if (!PyLong_CheckExact(v))
        return -1;
    Py_ssize_t x = PyLong_AsSsize_t(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (x > EXACT_INT || x < -EXACT_INT)
        return -1;
    *out = x;
    return 0;
}

/* ---- Fields: block object -> its 15 doubles ---- */

/* a slot of the table: a block (a reference held) and its fields' row in vals */
typedef struct {
    PyObject *key;
    Py_ssize_t row;
} Slot;

/* a step's stores' terms (_store_terms' tuple), by the call's arguments */
#define STORE_ARGS 6 /* _store_terms' arguments after the bytes */
typedef struct {
    double key[1 + STORE_ARGS]; /* the bytes and the arguments, compared bit for bit */
    unsigned ints;              /* which of them were Python ints */
    double d, ub, hbm, dh, end;
    int memory, has_l2w, has_dw;
    int64_t l2w, dw;
} Store;

#define MAX_STORES 256 /* kept per op at most (a walk stores a few byte counts) */

typedef struct {
    PyObject_HEAD
    Py_ssize_t len, cap; /* the blocks; the table's slots, a power of two (2**bits) */
    int bits;
    Slot *tab;
    double (*vals)[NF]; /* the blocks' fields, a row each, in the order first read */
    Py_ssize_t vcap;
    int n_stores;
    Store *stores;
    /* the type whose 15 fields are slots read in place (a dataclass with slots: each a
       member descriptor of an object; no __getattribute__ of its own), held, and where;
       slot_ok 0: that type is read with getattr */
    PyTypeObject *slot_type;
    int slot_ok;
    Py_ssize_t offsets[NF];
} Fields;

#define FIRST_BITS 8 /* 256 slots at first (an op's walks read some 300-500 blocks) */

static size_t slot_of(const Fields *c, PyObject *key)
{
    uint64_t h = ((uint64_t)(uintptr_t)key >> 4) * 11400714819323198485ull;
    return (size_t)(h >> (64 - c->bits));
}

static int fields_grow(Fields *c)
{
    int bits = c->bits ? c->bits + 1 : FIRST_BITS;
    Py_ssize_t cap = (Py_ssize_t)1 << bits;
    Slot *tab = PyMem_Calloc((size_t)cap, sizeof(Slot));
    double(*vals)[NF] = PyMem_Realloc(c->vals, (size_t)(cap / 2) * sizeof *vals);
    if (!tab || !vals) {
        PyMem_Free(tab);
        if (vals)
            c->vals = vals;
        PyErr_NoMemory();
        return -1;
    }
    Slot *old = c->tab;
    Py_ssize_t old_cap = c->cap;
    c->tab = tab;
    c->vals = vals;
    c->vcap = cap / 2;
    c->cap = cap;
    c->bits = bits;
    for (Py_ssize_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        size_t j = slot_of(c, old[i].key);
        while (tab[j].key)
            j = (j + 1) & (size_t)(cap - 1);
        tab[j] = old[i];
    }
    PyMem_Free(old);
    return 0;
}

/* whether type's fields are read in place, and where (c's slot_type becomes type):
   each field's name finds a member descriptor of an object slot on the type (what
   getattr would call; a data descriptor, so no instance dict shadows it), and the type
   gets attributes as object does */
static void find_slots(Fields *c, PyTypeObject *type)
{
    Py_INCREF(type);
    Py_XSETREF(c->slot_type, type);
    c->slot_ok = type->tp_getattro == PyObject_GenericGetAttr;
    for (int i = 0; c->slot_ok && i < NF; i++) {
        PyObject *d = _PyType_Lookup(type, field_strs[i]);
        if (!d || !Py_IS_TYPE(d, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            c->slot_ok = 0;
            break;
        }
        c->offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
}

/* the block's fields (valid until the next lookup: the rows may move); NULL where a
   field is missing or not a plain number (an error set or not: the caller clears) */
static const double *fields_of(Fields *c, PyObject *blk)
{
    if (c->cap) {
        size_t j = slot_of(c, blk);
        for (;;) {
            PyObject *k = c->tab[j].key;
            if (k == blk)
                return c->vals[c->tab[j].row];
            if (!k)
                break;
            j = (j + 1) & (size_t)(c->cap - 1);
        }
    }
    double f[NF];
    if (Py_TYPE(blk) != c->slot_type)
        find_slots(c, Py_TYPE(blk));
    if (c->slot_ok) { /* (the slots in place: what getattr returns; an empty one raises) */
        for (int i = 0; i < NF; i++) {
            PyObject *v = *(PyObject **)((char *)blk + c->offsets[i]);
            if (!v || as_double(v, &f[i]))
                return NULL;
        }
    } else {
        for (int i = 0; i < NF; i++) {
            PyObject *v = PyObject_GetAttr(blk, field_strs[i]);
            if (!v)
                return NULL;
            int bad = as_double(v, &f[i]);
            Py_DECREF(v);
            if (bad)
                return NULL;
        }
    }
    if (c->len + 1 > c->vcap && fields_grow(c) < 0) /* (at most half the slots full) */
        return NULL;
    size_t j = slot_of(c, blk);
    while (c->tab[j].key)
        j = (j + 1) & (size_t)(c->cap - 1);
    Py_INCREF(blk);
    c->tab[j].key = blk;
    c->tab[j].row = c->len;
    memcpy(c->vals[c->len], f, sizeof f);
    return c->vals[c->len++];
}

static void Fields_dealloc(Fields *self)
{
    for (Py_ssize_t i = 0; i < self->cap; i++)
        Py_XDECREF(self->tab[i].key);
    PyMem_Free(self->tab);
    PyMem_Free(self->vals);
    PyMem_Free(self->stores);
    Py_XDECREF(self->slot_type);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Fields_len(Fields *self)
{
    return self->len;
}

static PySequenceMethods Fields_as_sequence = {.sq_length = (lenfunc)Fields_len};

static PyTypeObject FieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hwsim.accelerators.ascend._cwalk.Fields",
    .tp_basicsize = sizeof(Fields),
    .tp_dealloc = (destructor)Fields_dealloc,
    .tp_as_sequence = &Fields_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Blocks' fields as walk() reads them, each block read once (len: the blocks).",
    .tp_new = PyType_GenericNew,
};

/* ---- the walk ---- */

/* the role names of the heads, and the bounds' names, interned */
static const char *head_names[5] = {"cube", "fix", "cflag", "vec", "vflag"};
static PyObject *head_keys[5], *str_memory, *str_onchip, *str_empty;

/* a new reference into a new tuple's slot; -1 where it is NULL (the slot left empty:
   the tuple's dealloc skips it) */
static int set_item(PyObject *tuple, Py_ssize_t i, PyObject *x)
{
    if (!x)
        return -1;
    PyTuple_SET_ITEM(tuple, i, x);
    return 0;
}

/* one step's terms added as _step_fields adds them: a term of k == 1 without the
   product */
static void add_term(double *acc, const double *f, Py_ssize_t k)
{
    if (k == 1) {
        for (int i = 0; i < NF; i++)
            acc[i] += f[i];
    } else {
        double dk = (double)k;
        for (int i = 0; i < NF; i++)
            acc[i] += f[i] * dk;
    }
}

/* Python's round() of a float into an int64 sum; -1 where Python's would not fit
   (not finite: Python raises; beyond int64: a big int) */
static int add_round(int64_t *sum, double x)
{
    if (!isfinite(x))
        return -1;
    double r = nearbyint(x);
    if (r >= 9.2e18 || r <= -9.2e18)
        return -1;
    return __builtin_add_overflow(*sum, (int64_t)r, sum) ? -1 : 0;
}

static int add_int(int64_t *sum, int64_t x)
{
    return __builtin_add_overflow(*sum, x, sum) ? -1 : 0;
}

/* _store_terms(bytes, *args) as a Store, kept in the op's Fields: a function of its
   arguments only (cv_pipeline._store_terms), so the same arguments (the same bits and
   types) give the same terms. key: args as doubles (as_double), ints: which were ints */
static int store_terms(Fields *fc, PyObject *fn, PyObject *args, const double *key,
                       unsigned ints, Store *out)
{
    for (int i = 0; i < fc->n_stores; i++) {
        Store *st = &fc->stores[i];
        if (st->ints == ints && !memcmp(st->key, key, sizeof st->key)) {
            *out = *st;
            return 0;
        }
    }
    PyObject *call = PyTuple_New(1 + STORE_ARGS);
    if (!call)
        return -1;
    PyTuple_SET_ITEM(call, 0, PyFloat_FromDouble(key[0]));
    if (!PyTuple_GET_ITEM(call, 0)) {
        Py_DECREF(call);
        return -1;
    }
    for (int i = 0; i < STORE_ARGS; i++) {
        PyObject *x = PyTuple_GET_ITEM(args, i);
        Py_INCREF(x);
        PyTuple_SET_ITEM(call, 1 + i, x);
    }
    PyObject *got = PyObject_Call(fn, call, NULL);
    Py_DECREF(call);
    if (!got)
        return -1;
    int rc = -1;
    Store st;
    memcpy(st.key, key, sizeof st.key);
    st.ints = ints;
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 8)
        goto done;
    PyObject **it = &PyTuple_GET_ITEM(got, 0);
    if (as_double(it[0], &st.d) || as_double(it[2], &st.ub) || as_double(it[3], &st.hbm) ||
        as_double(it[7], &st.end))
        goto done;
    if ((st.memory = PyObject_IsTrue(it[1])) < 0)
        goto done;
    st.has_l2w = it[4] != Py_None;
    st.has_dw = it[5] != Py_None;
    st.l2w = st.dw = 0;
    st.dh = 0.0;
    int overflow;
    if (st.has_l2w) {
        if (!PyLong_CheckExact(it[4]))
            goto done;
        st.l2w = PyLong_AsLongLongAndOverflow(it[4], &overflow);
        if (overflow || PyErr_Occurred())
            goto done;
    }
    if (st.has_dw) {
        if (!PyLong_CheckExact(it[5]) || as_double(it[6], &st.dh))
            goto done;
        st.dw = PyLong_AsLongLongAndOverflow(it[5], &overflow);
        if (overflow || PyErr_Occurred())
            goto done;
    }
    if (fc->n_stores < MAX_STORES) {
        if (!fc->stores && !(fc->stores = PyMem_Malloc(MAX_STORES * sizeof(Store)))) {
            PyErr_NoMemory();
            goto done;
        }
        fc->stores[fc->n_stores++] = st;
    }
    *out = st;
    rc = 0;
done:
    Py_DECREF(got);
    return rc;
}

/* the per-step arrays of _walk_numbers, one allocation */
enum { KD, VD, QK, FS, SM, PV, FO, UP, STORE, K_HBM, K_START, QK_END, PV_END, SOFT, T_QK,
       T_PV, N_ARR };

PyDoc_STRVAR(walk_doc,
"walk(tiles, ranges, fields, preload, sync_s, sync, hbm_stream_bw, l2_read_bw, hbm_bw,\n"
"     serial, store_terms, store_args, walk_parts, kv_buffers) -> tuple | None\n\n"
"cv_pipeline._walk_numbers(_step_fields(tiles, ranges), ranges, preload, sync_s, sync,\n"
"hbm_stream_bw, l2_read_bw, hbm_bw, serial, store_args, False) (with _store_terms =\n"
"store_terms, WALK_PARTS =\n"
"walk_parts, KV_BUFFERS = kv_buffers), the same tuple to the last bit; None where the\n"
"Python walk must run.");

static PyObject *walk(PyObject *self, PyObject *args)
{
    PyObject *tiles, *ranges, *store_fn, *store_args, *num[7];
    Fields *fc;
    Py_ssize_t walk_parts, kv_buffers;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOOOOOOO!nn", &PyList_Type, &tiles, &PyList_Type,
                          &ranges, &FieldsType, &fc, &num[0], &num[1], &num[2], &num[3],
                          &num[4], &num[5], &num[6], &store_fn, &PyTuple_Type, &store_args,
                          &walk_parts, &kv_buffers))
        return NULL;
    /* the numbers as the Python walk computes with them: plain floats or ints (an int
       of at most 2**53: its double's arithmetic; anything else, a numpy scalar whose
       results would be numpy's, is the Python's) */
    Py_ssize_t preload, serial_n;
    double sync_s, sync, hbm_stream_bw, l2_read_bw, hbm_bw;
    if (as_count(num[0], &preload) || as_double(num[1], &sync_s) || as_double(num[2], &sync) ||
        as_double(num[3], &hbm_stream_bw) || as_double(num[4], &l2_read_bw) ||
        as_double(num[5], &hbm_bw) || as_count(num[6], &serial_n))
        Py_RETURN_NONE;
    /* the stores' arguments after the bytes, as their key */
    double st_key[1 + STORE_ARGS];
    unsigned st_ints = 0;
    if (PyTuple_GET_SIZE(store_args) != STORE_ARGS)
        Py_RETURN_NONE;
    for (int i = 0; i < STORE_ARGS; i++) {
        PyObject *x = PyTuple_GET_ITEM(store_args, i);
        if (as_double(x, &st_key[1 + i]))
            Py_RETURN_NONE;
        st_ints |= (unsigned)PyLong_CheckExact(x) << i;
    }
    /* (serial: a Python int, k1 or 1, converted as a float multiply converts it) */
    double serial = (double)serial_n;
    Py_ssize_t n = PyList_GET_SIZE(ranges), n_tiles = PyList_GET_SIZE(tiles);
    if (n == 0 || preload < 0 || walk_parts <= 0 || kv_buffers < 0)
        Py_RETURN_NONE;
    PyObject *result = NULL;
    double *arr = PyMem_Calloc((size_t)(N_ARR * n), sizeof(double));
    char *flags = PyMem_Calloc((size_t)(3 * n), 1);
    Py_ssize_t *ab = PyMem_Malloc((size_t)(2 * n + n_tiles + 1) * sizeof(Py_ssize_t));
    if (!arr || !flags || !ab) {
        PyErr_NoMemory();
        goto fail;
    }
    double *kd = arr + KD * n, *vd = arr + VD * n, *qk = arr + QK * n, *fs = arr + FS * n;
    double *sm = arr + SM * n, *pv = arr + PV * n, *fo = arr + FO * n, *up = arr + UP * n;
    double *store = arr + STORE * n, *k_hbm = arr + K_HBM * n, *k_start = arr + K_START * n;
    double *qk_end = arr + QK_END * n, *pv_end = arr + PV_END * n, *soft = arr + SOFT * n;
    double *t_qk = arr + T_QK * n, *t_pv = arr + T_PV * n;
    char *k_miss = flags, *stores = flags + n, *st_hbm = flags + 2 * n;
    Py_ssize_t *tile_n = ab + 2 * n;
    for (Py_ssize_t s = 0; s < n; s++) {
        PyObject *r = PyList_GET_ITEM(ranges, s);
        if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 2 ||
            as_count(PyTuple_GET_ITEM(r, 0), &ab[2 * s]) ||
            as_count(PyTuple_GET_ITEM(r, 1), &ab[2 * s + 1]))
            goto fallback;
    }
    for (Py_ssize_t i = 0; i < n_tiles; i++) {
        PyObject *t = PyList_GET_ITEM(tiles, i);
        if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 3 ||
            as_count(PyTuple_GET_ITEM(t, 2), &tile_n[i]))
            goto fallback;
    }

    /* _walk_numbers' sums */
    double m2_mem = 0.0, m2_chip = 0.0, m3_mem = 0.0, m3_chip = 0.0;
    int u2_mem = 0, u2_chip = 0, u3_mem = 0, u3_chip = 0;
    const char *m2_first = "", *m3_first = "";
    double m2 = 0.0, m3 = 0.0, hbm_t = 0.0, cube = 0.0, fix = 0.0, vec = 0.0;
    int64_t l2_read = 0, dram_read = 0, mask_read = 0, l2_write = 0, dram_write = 0;
    int u_l2r = 0, u_dr = 0, u_mdr = 0, u_l2w = 0, u_dw = 0;
    double a_hbm = 0.0, a_l2 = 0.0, a_ub = 0.0;
    Py_ssize_t n_v = 0;
    int flash = preload == 0;
    double inner = 0.0;

    Py_ssize_t r = 0, start = 0; /* _step_fields: the tile at the cursor, its first block */
    for (Py_ssize_t s = 0; s < n; s++) {
        Py_ssize_t a = ab[2 * s], b = ab[2 * s + 1];
        /* _step_fields: the step's fields, its tiles' terms in order */
        while (r < n_tiles && start + tile_n[r] <= a) {
            start += tile_n[r];
            r++;
        }
        double f[NF] = {0.0};
        Py_ssize_t i = r, t0 = start;
        while (i < n_tiles && t0 < b) {
            PyObject *tile = PyList_GET_ITEM(tiles, i);
            Py_ssize_t nb = tile_n[i];
            if (t0 >= a && t0 + nb <= b) { /* the tile's sum, one term */
                const double *w = fields_of(fc, PyTuple_GET_ITEM(tile, 1));
                if (!w)
                    goto fallback;
                add_term(f, w, 1);
            } else { /* the range cuts the tile: its runs that overlap, block counts */
                PyObject *runs = PyTuple_GET_ITEM(tile, 0);
                if (!PyList_CheckExact(runs) && !PyTuple_CheckExact(runs))
                    goto fallback;
                Py_ssize_t n_runs = PySequence_Fast_GET_SIZE(runs), t = t0;
                PyObject **items = PySequence_Fast_ITEMS(runs);
                for (Py_ssize_t q = 0; q < n_runs; q++) {
                    PyObject *run = items[q];
                    Py_ssize_t k;
                    if (!PyTuple_CheckExact(run) || PyTuple_GET_SIZE(run) != 2 ||
                        as_count(PyTuple_GET_ITEM(run, 1), &k))
                        goto fallback;
                    Py_ssize_t overlap = (b < t + k ? b : t + k) - (a > t ? a : t);
                    if (overlap > 0) {
                        const double *w = fields_of(fc, PyTuple_GET_ITEM(run, 0));
                        if (!w)
                            goto fallback;
                        add_term(f, w, overlap);
                    }
                    t += k;
                }
            }
            t0 += nb;
            i++;
        }
        double qk_s = f[0], fix_s_s = f[1], softmax_s = f[2], pv_s = f[3], fix_o_s = f[4];
        double update_s = f[5], final_s = f[6], lh = f[7], ll = f[8], slow = f[9];
        double mask = f[10], pad_h = f[11], pad_l = f[12], store_bytes = f[13], load_v = f[14];

        /* _walk_numbers' step */
        if (flash)
            inner = (double)(b - a - 1) * sync_s;
        double data = lh - mask + ll + slow;
        double fv = data > 0.0 && load_v > 0.0 ? load_v / data : 0.0;
        fv = fv > 1.0 ? 1.0 : fv;
        double hb, l2b, sl, pad_hbm, pad_l2, vp[5] = {0.0};
        int has_v;
        if (fv <= 0.0) {
            hb = lh, l2b = ll, sl = slow, pad_hbm = pad_h, pad_l2 = pad_l;
            has_v = 0;
        } else {
            double fk = 1.0 - fv;
            hb = mask + (lh - mask) * fk, l2b = ll * fk, sl = slow * fk;
            pad_hbm = pad_h * fk, pad_l2 = pad_l * fk;
            vp[0] = (lh - mask) * fv, vp[1] = ll * fv, vp[2] = slow * fv;
            vp[3] = pad_h * fv, vp[4] = pad_l * fv;
            has_v = 1;
        }
        int is_v = 0;
        for (;;) { /* the K part, then the V part if it has rows of its own */
            hb = hb > 0.0 ? hb : 0.0;
            double hbm_s = (hb + (pad_hbm + sl)) / hbm_stream_bw;
            double l2_s = (l2b + pad_l2) / l2_read_bw;
            l2b = (l2b > 0.0 ? l2b : 0.0) + sl;
            if (l2b > 0) {
                if (add_round(&l2_read, l2b))
                    goto fallback;
                u_l2r = 1;
            }
            double d = hbm_s + l2_s;
            d = d > 0.0 ? d : 0.0;
            a_hbm += hb;
            a_l2 += hb + l2b;
            m2 += d;
            if (hbm_s >= l2_s && hbm_s > 0) {
                m2_mem += d;
                u2_mem = 1;
                if (!*m2_first)
                    m2_first = "memory";
            } else {
                m2_chip += d;
                u2_chip = 1;
                if (!*m2_first)
                    m2_first = "onchip";
            }
            if (is_v) {
                vd[s] = d;
                n_v++;
                break;
            }
            double miss = lh > 0.0 ? lh : 0.0;
            if (miss > 0) {
                if (add_round(&dram_read, miss))
                    goto fallback;
                u_dr = 1;
                if (mask != 0.0) {
                    if (add_round(&mask_read, mask))
                        goto fallback;
                    u_mdr = 1;
                }
                double dh = miss / hbm_bw;
                hbm_t += dh * serial;
                k_hbm[s] = dh * serial;
                k_miss[s] = 1;
                d = d > dh ? d : dh;
            }
            kd[s] = d;
            if (!has_v)
                break;
            hb = vp[0], l2b = vp[1], sl = vp[2], pad_hbm = vp[3], pad_l2 = vp[4];
            if (!(hb != 0.0 || l2b != 0.0 || sl != 0.0 || pad_hbm != 0.0 || pad_l2 != 0.0))
                break;
            is_v = 1;
        }
        double q = qk_s > 0.0 ? qk_s : 0.0, x;
        qk[s] = q;
        x = pv_s + inner;
        pv[s] = x = x > 0.0 ? x : 0.0;
        cube += q + x;
        fs[s] = q = fix_s_s > 0.0 ? fix_s_s : 0.0;
        fo[s] = x = fix_o_s > 0.0 ? fix_o_s : 0.0;
        fix += q + x;
        q = softmax_s + inner;
        sm[s] = q = q > 0.0 ? q : 0.0;
        x = update_s + final_s;
        up[s] = x = x > 0.0 ? x : 0.0;
        vec += q + x;
        if (store_bytes != 0.0) { /* each AIV stores its rows, side by side */
            Store st;
            st_key[0] = store_bytes;
            if (store_terms(fc, store_fn, store_args, st_key, st_ints, &st))
                goto fallback;
            m3 += st.d;
            if (st.memory) {
                m3_mem += st.d;
                u3_mem = 1;
                if (!*m3_first)
                    m3_first = "memory";
            } else {
                m3_chip += st.d;
                u3_chip = 1;
                if (!*m3_first)
                    m3_first = "onchip";
            }
            a_ub += st.ub;
            a_hbm += st.hbm;
            stores[s] = 1;
            if (st.has_l2w) {
                if (add_int(&l2_write, st.l2w))
                    goto fallback;
                u_l2w = 1;
            }
            if (st.has_dw) {
                if (add_int(&dram_write, st.dw))
                    goto fallback;
                u_dw = 1;
                hbm_t += st.dh;
                st_hbm[s] = 1;
            }
            store[s] = st.end;
        }
    }

    /* _walk_numbers' critical path: each stage's end in program order */
    double c = 0.0, v = 0.0, end = 0.0;
    double h_hbm = INFINITY, h_flag = INFINITY, h_store = INFINITY;
    for (Py_ssize_t s = -preload; s < n; s++) {
        Py_ssize_t j = s + preload;
        double f;
        if (j < n) {
            f = j >= kv_buffers ? qk_end[j - kv_buffers] : 0.0;
            if (k_miss[j] && f < h_hbm)
                h_hbm = f;
            k_start[j] = f;
            f += kd[j];
            c = c > f ? c : f;
            if (j > preload) {
                f = soft[j - preload - 1];
                c = c > f ? c : f;
            }
            c += qk[j];
            qk_end[j] = c;
            f = c + fs[j];
            h_flag = h_flag < f ? h_flag : f;
            f += sync;
            v = (v > f ? v : f) + sm[j];
            soft[j] = v;
        }
        if (s < 0)
            continue;
        f = (s >= kv_buffers ? pv_end[s - kv_buffers] : 0.0) + vd[s];
        c = c > f ? c : f;
        f = soft[s] + sync;
        c = (c > f ? c : f) + pv[s];
        pv_end[s] = c;
        f = c + fo[s];
        h_flag = h_flag < f ? h_flag : f;
        f += sync;
        v = (v > f ? v : f) + up[s];
        if (stores[s]) {
            h_store = h_store < v ? h_store : v;
            if (st_hbm[s] && v < h_hbm)
                h_hbm = v;
            if (store[s] != 0.0) {
                f = v + store[s];
                end = end > f ? end : f;
            }
        }
    }
    double path = v > end ? v : end;
    Py_ssize_t n_k = 0, n_st = 0, n_st_hbm = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        n_k += k_miss[s];
        n_st += stores[s];
        n_st_hbm += st_hbm[s];
    }

    /* _k_load_parts: the K loads on the hbm unit in parts, one backward pass */
    PyObject *parts = PyList_New(0);
    if (!parts)
        goto fail;
    if (n_k) {
        Py_ssize_t cut = (n + walk_parts - 1) / walk_parts;
        double h = 0.0, w = 0.0, q = INFINITY;
        double cube_next = 0.0, vec_next = 0.0;
        for (Py_ssize_t s = n - 1; s >= -preload; s--) {
            double x;
            if (s >= 0) {
                double u = store[s];
                u = u > vec_next ? u : vec_next;
                vec_next = up[s] + u;
                x = fo[s] + sync + vec_next;
                x = x > cube_next ? x : cube_next;
                t_pv[s] = x;
                cube_next = pv[s] + x;
            }
            Py_ssize_t j = s + preload;
            if (j < n) {
                x = sync + pv[j] + t_pv[j];
                x = x > vec_next ? x : vec_next;
                Py_ssize_t f = j + preload + 1;
                if (f < n) {
                    double y = qk[f] + t_qk[f];
                    x = x > y ? x : y;
                }
                vec_next = sm[j] + x;
                x = fs[j] + sync + vec_next;
                x = x > cube_next ? x : cube_next;
                t_qk[j] = x;
                cube_next = x = qk[j] + x;
                if (k_miss[j]) {
                    if (q == INFINITY)
                        h = k_start[j];
                    else if (k_start[j] < h)
                        h = k_start[j];
                    w += k_hbm[j];
                    q = q < x ? q : x;
                }
                if (j % cut == 0 && q < INFINITY) {
                    PyObject *part = PyTuple_New(3);
                    if (!part || set_item(part, 0, PyFloat_FromDouble(h)) ||
                        set_item(part, 1, PyFloat_FromDouble(w)) ||
                        set_item(part, 2, PyFloat_FromDouble(q)) ||
                        PyList_Append(parts, part) < 0) {
                        Py_XDECREF(part);
                        Py_DECREF(parts);
                        goto fail;
                    }
                    Py_DECREF(part);
                    w = 0.0, q = INFINITY;
                }
            }
        }
    }
    PyObject *hbm_parts = PyList_AsTuple(parts);
    Py_DECREF(parts);
    if (!hbm_parts)
        goto fail;
    /* the tuple _walk_numbers returns (built item by item: Py_BuildValue's format
       and its dict keys made per call cost a third of the walk) */
    result = PyTuple_New(39);
    if (!result) {
        Py_DECREF(hbm_parts);
        goto fail;
    }
    PyTuple_SET_ITEM(result, 37, hbm_parts);
    double fl[] = {m2, m2_mem, m2_chip, m3, m3_mem, m3_chip, hbm_t, cube, fix, vec, a_hbm,
                   a_l2, a_ub, path, h_hbm, h_store};
    Py_ssize_t at_fl[] = {0, 3, 5, 6, 9, 11, 12, 13, 14, 15, 26, 27, 28, 33, 35, 36};
    for (int i = 0; i < 16; i++)
        if (set_item(result, at_fl[i], PyFloat_FromDouble(fl[i])))
            goto fail_result;
    int bl[] = {u2_mem, u2_chip, u3_mem, u3_chip, u_l2r, u_dr, u_mdr, u_l2w, u_dw};
    Py_ssize_t at_bl[] = {2, 4, 8, 10, 17, 19, 21, 23, 25};
    for (int i = 0; i < 9; i++)
        PyTuple_SET_ITEM(result, at_bl[i], Py_NewRef(bl[i] ? Py_True : Py_False));
    int64_t by[] = {l2_read, dram_read, mask_read, l2_write, dram_write};
    for (int i = 0; i < 5; i++)
        if (set_item(result, 16 + 2 * i, PyLong_FromLongLong((long long)by[i])))
            goto fail_result;
    Py_ssize_t ct[] = {n_v, n_k, n_st, n_st_hbm};
    for (int i = 0; i < 4; i++)
        if (set_item(result, 29 + i, PyLong_FromSsize_t(ct[i])))
            goto fail_result;
    PyTuple_SET_ITEM(result, 1, Py_NewRef(*m2_first == 'm' ? str_memory
                                          : *m2_first ? str_onchip : str_empty));
    PyTuple_SET_ITEM(result, 7, Py_NewRef(*m3_first == 'm' ? str_memory
                                          : *m3_first ? str_onchip : str_empty));
    PyObject *heads = PyDict_New(), *acts = PyDict_New();
    if (set_item(result, 34, heads) || set_item(result, 38, acts))
        goto fail_result;
    double hd[] = {kd[0], qk_end[0], h_flag, qk_end[0] + fs[0] + sync, soft[0]};
    for (int i = 0; i < 5; i++) {
        PyObject *x = PyFloat_FromDouble(hd[i]);
        if (!x || PyDict_SetItem(heads, head_keys[i], x) < 0) {
            Py_XDECREF(x);
            goto fail_result;
        }
        Py_DECREF(x);
    }
    goto done;
fallback: /* anything the Python walk must do itself */
    PyErr_Clear();
    result = Py_None;
    Py_INCREF(result);
    goto done;
fail_result:
    Py_DECREF(result);
fail:
    result = NULL;
done:
    PyMem_Free(arr);
    PyMem_Free(flags);
    PyMem_Free(ab);
    return result;
}


/* ---- add_to: a walk's sums into the op's accumulator ---- */

/* the names add_to reads, interned: the _WalkSums' slots and the Accumulator's */
enum { A_BUSY, A_NBYTES, A_ACTIONS, A_HBM_PARTS, A_HEADS, A_COUNT, A_PATH_S, A_HEAD, A_PARTS,
       A_FINISH, N_ATTRS };
static const char *attr_names[N_ATTRS] = {"busy", "nbytes", "actions", "hbm_parts", "heads",
                                          "count", "path_s", "head", "parts", "finish"};
static PyObject *attr_strs[N_ATTRS], *zero_float, *zero_int;

/* d[key] = d.get(key, zero) + v (a new value; v borrowed) */
static int add_into(PyObject *d, PyObject *key, PyObject *zero, PyObject *v)
{
    PyObject *old = PyDict_GetItemWithError(d, key);
    if (!old && PyErr_Occurred())
        return -1;
    PyObject *x = PyNumber_Add(old ? old : zero, v);
    if (!x)
        return -1;
    int rc = PyDict_SetItem(d, key, x);
    Py_DECREF(x);
    return rc;
}

/* an iterable's items as a new list (a tuple or list as is: a new reference) */
static PyObject *as_seq(PyObject *x)
{
    return PySequence_Fast(x, "add_to: a sequence expected");
}

/* the item's n fields (a tuple or list of n), borrowed; -1 with an error otherwise */
static int unpack(PyObject *item, Py_ssize_t n, PyObject **out)
{
    if ((!PyTuple_CheckExact(item) && !PyList_CheckExact(item)) ||
        PySequence_Fast_GET_SIZE(item) != n) {
        PyErr_SetString(PyExc_TypeError, "add_to: an item of the wrong shape");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = PySequence_Fast_GET_ITEM(item, i);
    return 0;
}

PyDoc_STRVAR(add_to_doc,
"add_to(acc, sums, units, start_s, after_s, hbm_unit) -> (acc.count - 1,)\n\n"
"cv_pipeline._WalkSums.add_to(sums, acc, units, start_s, after_s), the same\n"
"operations on the same objects in the same order (each sum Python's + of the\n"
"two objects, each comparison Python's), for an Accumulator exactly (its entry\n"
"and add_part inline).");

static PyObject *add_to(PyObject *self, PyObject *args)
{
    PyObject *acc, *sums, *units, *start_s, *after_s, *hbm_unit;
    if (!PyArg_ParseTuple(args, "OOO!OOO:add_to", &acc, &sums, &PyDict_Type, &units, &start_s,
                          &after_s, &hbm_unit))
        return NULL;
    PyObject *a[N_ATTRS] = {NULL};
    PyObject *seqs[4] = {NULL}; /* busy, nbytes, actions, hbm_parts as sequences */
    PyObject *result = NULL, *h = NULL, *entry = NULL, *e = NULL;
    PyObject *busy = NULL, *nbytes = NULL, *actions = NULL;
    for (int i = 0; i < N_ATTRS; i++)
        if (!(a[i] = PyObject_GetAttr(i < A_HEAD ? sums : acc, attr_strs[i])))
            goto done;
    if (!PyDict_CheckExact(a[A_HEADS]) || !PyDict_CheckExact(a[A_HEAD]) ||
        !PyDict_CheckExact(a[A_PARTS]) || !PyList_CheckExact(a[A_FINISH])) {
        PyErr_SetString(PyExc_TypeError, "add_to: a dict or list expected");
        goto done;
    }
    /* the accumulator's (the names of the sums' own: busy, nbytes, actions) */
    if (!(busy = PyObject_GetAttr(acc, attr_strs[A_BUSY])) ||
        !(nbytes = PyObject_GetAttr(acc, attr_strs[A_NBYTES])) ||
        !(actions = PyObject_GetAttr(acc, attr_strs[A_ACTIONS])))
        goto done;
    if (!PyDict_CheckExact(busy) || !PyDict_CheckExact(nbytes) || !PyDict_CheckExact(actions)) {
        PyErr_SetString(PyExc_TypeError, "add_to: a dict expected");
        goto done;
    }
    for (int i = 0; i < 4; i++)
        if (!(seqs[i] = as_seq(a[i])))
            goto done;
    PyObject *heads = a[A_HEADS], *head = a[A_HEAD];
    Py_ssize_t n_busy = PySequence_Fast_GET_SIZE(seqs[0]);
    for (Py_ssize_t i = 0; i < n_busy; i++) { /* for role, seconds, bounds in busy */
        PyObject *f[3];
        if (unpack(PySequence_Fast_GET_ITEM(seqs[0], i), 3, f) < 0)
            goto done;
        PyObject *role = f[0], *seconds = f[1];
        PyObject *off = PyDict_GetItemWithError(heads, role);
        if (!off && PyErr_Occurred())
            goto done;
        Py_XSETREF(h, PyNumber_Add(start_s, off ? off : zero_float));
        if (!h)
            goto done;
        PyObject *names = PyDict_GetItemWithError(units, role);
        if (!names) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, role);
            goto done;
        }
        PyObject *bounds = as_seq(f[2]), *us = as_seq(names);
        if (!bounds || !us) {
            Py_XDECREF(bounds);
            Py_XDECREF(us);
            goto done;
        }
        int bad = 0;
        for (Py_ssize_t u = 0; !bad && u < PySequence_Fast_GET_SIZE(us); u++) {
            PyObject *unit = PySequence_Fast_GET_ITEM(us, u);
            /* Accumulator.entry(unit, h) */
            entry = PyDict_GetItemWithError(busy, unit);
            if (!entry) {
                if (PyErr_Occurred()) {
                    bad = 1;
                    break;
                }
                PyObject *by = PyDict_New();
                entry = by ? PyList_New(2) : NULL;
                if (!entry) {
                    Py_XDECREF(by);
                    bad = 1;
                    break;
                }
                Py_INCREF(zero_float);
                PyList_SET_ITEM(entry, 0, zero_float);
                PyList_SET_ITEM(entry, 1, by);
                int rc = PyDict_SetItem(busy, unit, entry);
                Py_DECREF(entry); /* (the dict holds it) */
                int pos = rc < 0 ? -1 : PyObject_RichCompareBool(h, zero_float, Py_GT);
                if (pos < 0 || (pos && PyDict_SetItem(head, unit, h) < 0)) {
                    bad = 1;
                    break;
                }
            } else {
                PyObject *was = PyDict_GetItemWithError(head, unit);
                if (!was && PyErr_Occurred()) {
                    bad = 1;
                    break;
                }
                int lower = PyObject_RichCompareBool(h, was ? was : zero_float, Py_LT);
                if (lower < 0 || (lower && PyDict_SetItem(head, unit, h) < 0)) {
                    bad = 1;
                    break;
                }
            }
            if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) < 2) {
                PyErr_SetString(PyExc_TypeError, "add_to: a busy entry is not [seconds, by]");
                bad = 1;
                break;
            }
            /* e[0] += seconds */
            e = PyNumber_InPlaceAdd(PyList_GET_ITEM(entry, 0), seconds);
            if (!e || PyList_SetItem(entry, 0, e) < 0) { /* (steals e) */
                e = NULL;
                bad = 1;
                break;
            }
            e = NULL;
            PyObject *by = PyList_GET_ITEM(entry, 1);
            if (!PyDict_Check(by)) {
                PyErr_SetString(PyExc_TypeError, "add_to: a busy entry's bounds not a dict");
                bad = 1;
                break;
            }
            for (Py_ssize_t b = 0; b < PySequence_Fast_GET_SIZE(bounds); b++) {
                PyObject *bv[2];
                if (unpack(PySequence_Fast_GET_ITEM(bounds, b), 2, bv) < 0 ||
                    add_into(by, bv[0], zero_float, bv[1]) < 0) {
                    bad = 1;
                    break;
                }
            }
        }
        Py_DECREF(bounds);
        Py_DECREF(us);
        if (bad)
            goto done;
    }
    for (int k = 1; k <= 2; k++) { /* nbytes[key] += v (from 0), actions[key] (from 0.0) */
        PyObject *d = k == 1 ? nbytes : actions, *zero = k == 1 ? zero_int : zero_float;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seqs[k]); i++) {
            PyObject *kv[2];
            if (unpack(PySequence_Fast_GET_ITEM(seqs[k], i), 2, kv) < 0 ||
                add_into(d, kv[0], zero, kv[1]) < 0)
                goto done;
        }
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seqs[3]); i++) {
        /* acc.add_part(hbm_unit, start_s + h, seconds, tail + after_s) */
        PyObject *f[3];
        if (unpack(PySequence_Fast_GET_ITEM(seqs[3], i), 3, f) < 0)
            goto done;
        PyObject *ph = PyNumber_Add(start_s, f[0]);
        PyObject *pt = ph ? PyNumber_Add(f[2], after_s) : NULL;
        PyObject *part = pt ? PyTuple_Pack(3, ph, f[1], pt) : NULL;
        Py_XDECREF(ph);
        Py_XDECREF(pt);
        if (!part)
            goto done;
        PyObject *got = PyDict_GetItemWithError(a[A_PARTS], hbm_unit);
        int rc;
        if (got) {
            rc = PyList_Append(got, part);
        } else if (PyErr_Occurred()) {
            rc = -1;
        } else {
            PyObject *one = PyList_New(1);
            if (one) {
                Py_INCREF(part);
                PyList_SET_ITEM(one, 0, part);
            }
            rc = one ? PyDict_SetItem(a[A_PARTS], hbm_unit, one) : -1;
            Py_XDECREF(one);
        }
        Py_DECREF(part);
        if (rc < 0)
            goto done;
    }
    /* finish.extend([start_s] * (count - 1)); finish.append(start_s + path_s) */
    Py_ssize_t count = PyLong_AsSsize_t(a[A_COUNT]);
    if (count == -1 && PyErr_Occurred())
        goto done;
    for (Py_ssize_t i = 0; i < count - 1; i++)
        if (PyList_Append(a[A_FINISH], start_s) < 0)
            goto done;
    PyObject *last = PyNumber_Add(start_s, a[A_PATH_S]);
    if (!last || PyList_Append(a[A_FINISH], last) < 0) {
        Py_XDECREF(last);
        goto done;
    }
    Py_DECREF(last);
    /* acc.count += count; return (acc.count - 1,) */
    PyObject *was = PyObject_GetAttr(acc, attr_strs[A_COUNT]);
    PyObject *now = was ? PyNumber_Add(was, a[A_COUNT]) : NULL;
    Py_XDECREF(was);
    if (!now || PyObject_SetAttr(acc, attr_strs[A_COUNT], now) < 0) {
        Py_XDECREF(now);
        goto done;
    }
    PyObject *one = PyLong_FromLong(1);
    PyObject *end = one ? PyNumber_Subtract(now, one) : NULL;
    Py_XDECREF(one);
    Py_DECREF(now);
    if (end) {
        result = PyTuple_Pack(1, end);
        Py_DECREF(end);
    }
done:
    Py_XDECREF(busy);
    Py_XDECREF(nbytes);
    Py_XDECREF(actions);
    Py_XDECREF(h);
    for (int i = 0; i < 4; i++)
        Py_XDECREF(seqs[i]);
    for (int i = 0; i < N_ATTRS; i++)
        Py_XDECREF(a[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, walk_doc},
    {"add_to", add_to, METH_VARARGS, add_to_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cwalk",
    "The analytical attention walk of hwsim.accelerators.ascend.cv_pipeline, compiled "
    "(optional; the same numbers).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__cwalk(void)
{
    for (int i = 0; i < NF; i++)
        if (!field_strs[i] && !(field_strs[i] = PyUnicode_InternFromString(field_names[i])))
            return NULL;
    for (int i = 0; i < 5; i++)
        if (!head_keys[i] && !(head_keys[i] = PyUnicode_InternFromString(head_names[i])))
            return NULL;
    if ((!str_memory && !(str_memory = PyUnicode_InternFromString("memory"))) ||
        (!str_onchip && !(str_onchip = PyUnicode_InternFromString("onchip"))) ||
        (!str_empty && !(str_empty = PyUnicode_InternFromString(""))))
        return NULL;
    for (int i = 0; i < N_ATTRS; i++)
        if (!attr_strs[i] && !(attr_strs[i] = PyUnicode_InternFromString(attr_names[i])))
            return NULL;
    if ((!zero_float && !(zero_float = PyFloat_FromDouble(0.0))) ||
        (!zero_int && !(zero_int = PyLong_FromLong(0))))
        return NULL;
    if (PyType_Ready(&FieldsType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&FieldsType);
    /* the version of walk()'s call: cv_pipeline takes the module only where it matches
       (a build left from before a change of the call is not used) */
    if (PyModule_AddObject(m, "Fields", (PyObject *)&FieldsType) < 0 ||
        PyModule_AddIntConstant(m, "CALL_VERSION", 1) < 0) {
        Py_DECREF(&FieldsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
