# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The batcher's common step, compiled: ``batcher.batch._common_steps`` without the interpreter.

The common step is the next seq, no later than a silence after the newest reading and not
before it, an import register that rises within the max-power bound (or falls within the
tolerance) with nothing held, no export register, no gap or span kept for late readings. For
it every rule of ``batcher.batch`` reduces to what is done here, in the order ``take`` would do
it (the numbering, the step, the sample, the register), and the result is the same to the last
bit: the figures of the buckets are read into C doubles and integers once per hour, changed by
the very operations the interpreter would do, in its order, and written back before anything
else reads them. ``tests/unit/batcher/test_batcher_common_step.py`` holds it to the general rules.

A reading the step does not cover (or a value of an unexpected type) ends the run: the caller's
general rules take it, and the step resumes after it.
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.object cimport PyObject, PyTypeObject
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

import dataclasses
import types

from batcher.buckets import HOUR_MS as _HOUR_MS, QUARTER_MS as _QUARTER_MS, BucketAggregate, Quarter, day_key, hour_key
from batcher.registers import MS_PER_HOUR as _MS_PER_HOUR
from batcher.seen import SeenSeqs
from batcher.state import DeviceState, Point, RegisterState, Span
from readings.models import Reading

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyType_GenericAlloc(PyTypeObject*, Py_ssize_t)


# ---- slots by offset ----------------------------------------------------------------------------
#
# The classes the step reads and writes are slotted dataclasses: each field is a slot at a fixed
# offset in the object, which its member descriptor holds. Reading the slot at that offset is what
# the descriptor does, without looking the name up on the type first; every object is checked to
# be of the exact class first, so the offset is its own.

cdef Py_ssize_t _offset(type cls, str name) except -1:
    descriptor = cls.__dict__.get(name)
    if type(descriptor) is not types.MemberDescriptorType:
        raise ImportError(f"{cls.__name__}.{name} is not a slot")
    return (<PyMemberDescrObject*><PyObject*>descriptor).d_member.offset


cdef inline PyObject* _peek(object obj, Py_ssize_t offset):
    """The slot's value, borrowed; NULL when it was never set."""
    return (<PyObject**>((<char*><PyObject*>obj) + offset))[0]


cdef inline object _get(object obj, Py_ssize_t offset):
    cdef PyObject* value = _peek(obj, offset)
    if value == NULL:
        raise AttributeError("slot not set")
    return <object>value


cdef inline void _put(object obj, Py_ssize_t offset, object value):
    cdef PyObject** at = <PyObject**>((<char*><PyObject*>obj) + offset)
    cdef PyObject* old = at[0]
    Py_INCREF(value)
    at[0] = <PyObject*>value
    Py_XDECREF(old)


cdef Py_ssize_t B_ENERGY = _offset(BucketAggregate, "energy_wh")
cdef Py_ssize_t B_SAMPLES = _offset(BucketAggregate, "samples")
cdef Py_ssize_t B_POWER_SAMPLES = _offset(BucketAggregate, "power_samples")
cdef Py_ssize_t B_POWER_SUM = _offset(BucketAggregate, "power_sum_w")
cdef Py_ssize_t B_POWER_MAX = _offset(BucketAggregate, "power_max_w")
cdef Py_ssize_t B_FIRST = _offset(BucketAggregate, "first_ts_ms")
cdef Py_ssize_t B_LAST = _offset(BucketAggregate, "last_ts_ms")
cdef Py_ssize_t B_QUARTERS = _offset(BucketAggregate, "quarters")
cdef Py_ssize_t Q_ENERGY = _offset(Quarter, "energy_wh")
cdef Py_ssize_t Q_SAMPLES = _offset(Quarter, "samples")
cdef Py_ssize_t Q_POWER_MAX = _offset(Quarter, "power_max_w")


# ---- fresh buckets ------------------------------------------------------------------------------
#
# ``BucketAggregate.for_bucket``, built the way ``object.__new__`` and the generated ``__init__``
# build it (every slot set to its field's default), without the interpreter. Only classes whose
# fields all have plain immutable defaults, and no ``__post_init__``, qualify; anything else fails
# the import, and the general rules take every reading.

cdef struct Defaults:
    Py_ssize_t n
    Py_ssize_t offsets[32]
    PyObject* values[32]  # borrowed: the dataclass's fields keep them


cdef Defaults _BUCKET
cdef Defaults _QUARTER


cdef int _defaults(Defaults* out, type cls) except -1:
    if hasattr(cls, "__post_init__") or len(dataclasses.fields(cls)) > 32:
        raise ImportError(f"{cls.__name__} is not built from its defaults alone")
    out.n = 0
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING or not (
            f.default is None or type(f.default) is int or type(f.default) is float
        ):
            raise ImportError(f"{cls.__name__}.{f.name} has no plain default")
        out.offsets[out.n] = _offset(cls, f.name)
        out.values[out.n] = <PyObject*>f.default
        out.n += 1
    if len(cls.__slots__) != out.n:
        raise ImportError(f"{cls.__name__} has slots that are not fields")
    return 0


cdef object _new(type cls, Defaults* defaults):
    obj = PyType_GenericAlloc(<PyTypeObject*>cls, 0)
    cdef Py_ssize_t k
    for k in range(defaults.n):
        _put(obj, defaults.offsets[k], <object>defaults.values[k])
    return obj


cdef object _bucket(dict aggregates, object device_id, str key, bint hourly):
    """``_DeviceRun.bucket``: the device's bucket ``key`` of the batch, made if it is not there."""
    at = (device_id, key)
    agg = aggregates.get(at)
    if agg is None:
        agg = _new(BucketAggregate, &_BUCKET)
        if hourly:
            _put(
                agg,
                B_QUARTERS,
                [_new(Quarter, &_QUARTER), _new(Quarter, &_QUARTER), _new(Quarter, &_QUARTER), _new(Quarter, &_QUARTER)],
            )
        aggregates[at] = agg
    return agg


_defaults(&_BUCKET, BucketAggregate)
_defaults(&_QUARTER, Quarter)


# ---- the state's copy ---------------------------------------------------------------------------
#
# ``DeviceState.copy`` (and the ``copy`` of its seq sets and registers) slot by slot: what is
# shared is shared, what the copy owns (seq sets, registers, the gaps' and the spans' lists, each
# seq interval) is new. The classes' slots are checked at import against the ones handled here, so
# a field added to them fails the import (and the general rules take every reading) until it is
# handled here too; ``tests/unit/batcher/test_batcher_state_copy.py`` holds it to ``copy``.

cdef struct Slots:
    Py_ssize_t n
    Py_ssize_t offsets[16]


cdef Slots _STATE_SLOTS, _REGISTER_SLOTS
cdef Py_ssize_t S_SEEN, S_REGISTER, S_EXPORT, S_PREV_SEEN, S_GAPS, R_SPANS, SEEN_INTERVALS, SEEN_MAX


cdef int _slots(Slots* out, type cls, frozenset expected) except -1:
    if frozenset(cls.__slots__) != expected:
        raise ImportError(f"{cls.__name__}'s slots are not the ones the compiled copy handles")
    out.n = 0
    for name in cls.__slots__:
        out.offsets[out.n] = _offset(cls, name)
        out.n += 1
    return 0


cdef object _clone(type cls, Slots* slots, object source):
    """A new object of ``cls`` sharing every slot of ``source``."""
    obj = PyType_GenericAlloc(<PyTypeObject*>cls, 0)
    cdef Py_ssize_t k
    cdef PyObject* value
    for k in range(slots.n):
        value = _peek(source, slots.offsets[k])
        if value != NULL:
            _put(obj, slots.offsets[k], <object>value)
    return obj


cdef object _copy_seen(object seen):
    if type(seen) is not SeenSeqs:
        return seen.copy()
    obj = PyType_GenericAlloc(<PyTypeObject*>SeenSeqs, 0)
    cdef list intervals = _get(seen, SEEN_INTERVALS)
    cdef list copied = []
    for interval in intervals:
        low, high = interval
        copied.append([low, high])
    _put(obj, SEEN_INTERVALS, copied)
    _put(obj, SEEN_MAX, _get(seen, SEEN_MAX))
    return obj


cdef object _copy_register(object register):
    if type(register) is not RegisterState:
        return register.copy()
    obj = _clone(RegisterState, &_REGISTER_SLOTS, register)
    _put(obj, R_SPANS, list(_get(register, R_SPANS)))
    return obj


def copy_state(state):
    """``state.copy()``."""
    if type(state) is not DeviceState:
        return state.copy()
    obj = _clone(DeviceState, &_STATE_SLOTS, state)
    _put(obj, S_SEEN, _copy_seen(_get(state, S_SEEN)))
    _put(obj, S_REGISTER, _copy_register(_get(state, S_REGISTER)))
    export = _get(state, S_EXPORT)
    if export is not None:
        _put(obj, S_EXPORT, _copy_register(export))
    prev_seen = _get(state, S_PREV_SEEN)
    if prev_seen is not None:
        _put(obj, S_PREV_SEEN, _copy_seen(prev_seen))
    _put(obj, S_GAPS, list(_get(state, S_GAPS)))
    return obj


_slots(
    &_STATE_SLOTS,
    DeviceState,
    frozenset({
        "seen", "newest", "newest_raw_ts_ms", "newest_power_w", "register", "export", "prev_seen", "epoch_ts_ms",
        "cadence_ms", "gaps", "head", "alerts",
    }),
)
_slots(&_REGISTER_SLOTS, RegisterState, frozenset({"ref", "suspect", "anchor", "since_anchor_wh", "spans", "first"}))
if frozenset(SeenSeqs.__slots__) != frozenset({"_intervals", "max_intervals"}):
    raise ImportError("SeenSeqs's slots are not the ones the compiled copy handles")
S_SEEN = _offset(DeviceState, "seen")
S_REGISTER = _offset(DeviceState, "register")
S_EXPORT = _offset(DeviceState, "export")
S_PREV_SEEN = _offset(DeviceState, "prev_seen")
S_GAPS = _offset(DeviceState, "gaps")
R_SPANS = _offset(RegisterState, "spans")
SEEN_INTERVALS = _offset(SeenSeqs, "_intervals")
SEEN_MAX = _offset(SeenSeqs, "max_intervals")


cdef long long HOUR_MS = _HOUR_MS
cdef long long QUARTER_MS = _QUARTER_MS
# The interpreter divides a float by the int MS_PER_HOUR, which it turns into this double.
cdef double MS_PER_HOUR = <double>_MS_PER_HOUR


# What the common step changes of one bucket (``BucketAggregate``).
cdef struct Figures:
    double energy_wh
    long long samples
    long long power_samples
    double power_sum_w
    double power_max_w
    bint has_power_max
    long long first_ts_ms
    bint has_first
    long long last_ts_ms
    bint has_last


# What the common step changes of one quarter (``Quarter``).
cdef struct QuarterFigures:
    double energy_wh
    long long samples
    double power_max_w
    bint has_power_max


# The current hour's and day's figures, while they are held in C.
cdef struct Open:
    Figures hour
    Figures day
    QuarterFigures q[4]
    unsigned int touched  # the quarters held (bit k: quarter k)
    PyObject* quarters  # the hour's list of quarters (borrowed: the hour holds it)


cdef long long _TIME_LIMIT = 2**62
"""Times held in C are within +-2**62 ms: their sums and differences cannot overflow."""
cdef long long _SPAN_LIMIT = 2**59
"""Silence limit, late window and cadence below 2**59 ms: 7 * cadence + a spacing cannot overflow."""


cdef inline bint _time(object value, long long* out):
    return _int(value, out) and -_TIME_LIMIT < out[0] < _TIME_LIMIT


cdef inline bint _span(object value, long long* out):
    return _int(value, out) and 0 <= out[0] < _SPAN_LIMIT


cdef inline bint _int(object value, long long* out):
    """``value`` as a C integer when it is a Python int that fits one."""
    cdef int overflow = 0
    if type(value) is not int:
        return False
    out[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return not overflow


cdef int _load_bucket(Figures* f, object agg) except -1:
    cdef PyObject* value
    if type(agg) is not BucketAggregate:
        return 0
    energy, power_sum = _get(agg, B_ENERGY), _get(agg, B_POWER_SUM)
    if type(energy) is not float or type(power_sum) is not float:
        return 0
    f.energy_wh = PyFloat_AS_DOUBLE(energy)
    f.power_sum_w = PyFloat_AS_DOUBLE(power_sum)
    if not _int(_get(agg, B_SAMPLES), &f.samples) or not _int(_get(agg, B_POWER_SAMPLES), &f.power_samples):
        return 0
    power_max = _get(agg, B_POWER_MAX)
    f.has_power_max = power_max is not None
    if f.has_power_max:
        if type(power_max) is not float:
            return 0
        f.power_max_w = PyFloat_AS_DOUBLE(power_max)
    first = _get(agg, B_FIRST)
    f.has_first = first is not None
    if f.has_first and not _int(first, &f.first_ts_ms):
        return 0
    last = _get(agg, B_LAST)
    f.has_last = last is not None
    if f.has_last and not _int(last, &f.last_ts_ms):
        return 0
    return 1


cdef int _store_bucket(Figures* f, object agg) except -1:
    _put(agg, B_ENERGY, f.energy_wh)
    _put(agg, B_SAMPLES, f.samples)
    _put(agg, B_POWER_SAMPLES, f.power_samples)
    _put(agg, B_POWER_SUM, f.power_sum_w)
    _put(agg, B_POWER_MAX, f.power_max_w if f.has_power_max else None)
    _put(agg, B_FIRST, f.first_ts_ms if f.has_first else None)
    _put(agg, B_LAST, f.last_ts_ms if f.has_last else None)
    return 0


cdef int _load(Open* o, object hour, object day) except -1:
    """1 when the hour's and the day's figures are held in ``o``; 0 when one is not as expected.

    The hour's quarters are read when the step first touches each (``_quarter``).
    """
    if not _load_bucket(&o.hour, hour) or not _load_bucket(&o.day, day):
        return 0
    quarters = _get(hour, B_QUARTERS)
    if type(quarters) is not list or len(<list>quarters) != 4:
        return 0
    o.quarters = <PyObject*>quarters
    o.touched = 0
    return 1


cdef int _quarter(Open* o, int k) except -1:
    """Quarter ``k`` held in ``o``: 1, or 0 when its figures are not as expected."""
    if o.touched & (1 << k):
        return 1
    q = (<list><object>o.quarters)[k]
    if type(q) is not Quarter:
        return 0
    energy = _get(q, Q_ENERGY)
    if type(energy) is not float or not _int(_get(q, Q_SAMPLES), &o.q[k].samples):
        return 0
    o.q[k].energy_wh = PyFloat_AS_DOUBLE(energy)
    power_max = _get(q, Q_POWER_MAX)
    o.q[k].has_power_max = power_max is not None
    if o.q[k].has_power_max:
        if type(power_max) is not float:
            return 0
        o.q[k].power_max_w = PyFloat_AS_DOUBLE(power_max)
    o.touched |= 1 << k
    return 1


cdef int _store(Open* o, object hour, object day) except -1:
    cdef int k
    _store_bucket(&o.hour, hour)
    _store_bucket(&o.day, day)
    for k in range(4):
        if o.touched & (1 << k):
            q = (<list><object>o.quarters)[k]
            _put(q, Q_ENERGY, o.q[k].energy_wh)
            _put(q, Q_SAMPLES, o.q[k].samples)
            _put(q, Q_POWER_MAX, o.q[k].power_max_w if o.q[k].has_power_max else None)
    return 0


cdef inline void _sample(Figures* f, long long ts_ms, bint has_power, double power_w):
    # ``BucketAggregate.add_sample``: ``min`` and ``max`` keep their first argument on a tie,
    # and so do these comparisons.
    f.samples += 1
    if not f.has_first or ts_ms < f.first_ts_ms:
        f.first_ts_ms, f.has_first = ts_ms, True
    if not f.has_last or ts_ms > f.last_ts_ms:
        f.last_ts_ms, f.has_last = ts_ms, True
    if has_power:
        f.power_samples += 1
        f.power_sum_w += power_w
        if not f.has_power_max or power_w > f.power_max_w:
            f.power_max_w, f.has_power_max = power_w, True


def common_steps(run, list readings, Py_ssize_t index):
    """Take readings from ``index`` on while each is the common step; the index of the first that is not.

    ``run`` is the device's ``batcher.batch._DeviceRun``.
    """
    state = run.state
    newest = state.newest
    register = state.register
    ref = register.ref
    if (
        newest is None
        or ref is None
        or state.newest_raw_ts_ms is not None
        or state.export is not None
        or state.gaps
        or register.suspect is not None
        or register.anchor is not None
        or register.spans
    ):
        return index
    rules, stats, seen = run.rules, run.stats, state.seen
    cdef dict aggregates = run.aggregates
    device_id = run.device_id
    cdef list intervals = seen._intervals
    if not intervals:
        return index
    cdef list tail = intervals[len(intervals) - 1]
    cdef long long tail_high = 0
    cdef double tolerance_wh = 0.0, max_power_w = 0.0
    cdef long long silence_ms = 0, late_ms = 0, epoch_ms = 0, cadence_ms = 0, head_ms = 0, first_ms = 0
    cdef long long newest_seq = 0, newest_ts_ms = 0, ref_seq = 0, ref_ts_ms = 0
    cdef double ref_wh, energy_wh, rise_wh, power_w = 0.0
    if (
        type(ref.energy_wh) is not float
        or type(stats.energy_wh) is not float
        # The bound's float operations are the interpreter's only for floats.
        or type(rules.tolerance_wh) is not float
        or type(rules.max_power_w) is not float
        or not _int(tail[1], &tail_high)
        or not _span(rules.silence_limit_ms, &silence_ms)
        or not _span(rules.late_window_ms, &late_ms)
        or not _int(newest.seq, &newest_seq)
        or not _time(newest.ts_ms, &newest_ts_ms)
        or not _int(ref.seq, &ref_seq)
        or not _time(ref.ts_ms, &ref_ts_ms)
    ):
        return index
    cdef bint has_epoch = state.epoch_ts_ms is not None
    cdef bint has_cadence = state.cadence_ms is not None
    head = state.head
    first = register.first
    if (
        (has_epoch and not _time(state.epoch_ts_ms, &epoch_ms))
        or (has_cadence and not _span(state.cadence_ms, &cadence_ms))
        or (head is not None and not _time(head[1], &head_ms))
        or (first is not None and not _time(first.ts_ms, &first_ms))
    ):
        return index
    tolerance_wh, max_power_w = PyFloat_AS_DOUBLE(rules.tolerance_wh), PyFloat_AS_DOUBLE(rules.max_power_w)
    ref_wh = PyFloat_AS_DOUBLE(ref.energy_wh)
    cdef double energy_total_wh = PyFloat_AS_DOUBLE(stats.energy_wh)

    cdef Open o
    cdef bint held = False
    cdef long long hour_ms = run.hour_ms
    cdef long long r_hour_ms, seq = 0, ts_ms = 0, spacing_ms, elapsed_ms, quarter_ms
    cdef Py_ssize_t start = index, n = len(readings)
    cdef int k
    cdef bint has_power
    cdef object r, seq_o, ts_o, energy_o, power_o
    hour = day = None
    last = last_ref = None
    while index < n:
        r = readings[index]
        if type(r) is not Reading or PyTuple_GET_SIZE(r) != 9:
            break
        seq_o = <object>PyTuple_GET_ITEM(r, 1)
        ts_o = <object>PyTuple_GET_ITEM(r, 2)
        energy_o = <object>PyTuple_GET_ITEM(r, 3)
        power_o = <object>PyTuple_GET_ITEM(r, 4)
        if (
            not _int(seq_o, &seq)
            or not _time(ts_o, &ts_ms)
            or type(energy_o) is not float
            or (power_o is not None and type(power_o) is not float)
            or <object>PyTuple_GET_ITEM(r, 8) is not None
            or ts_ms < 0
            or newest_seq == 9223372036854775807
            or seq != newest_seq + 1
            or not newest_ts_ms <= ts_ms <= newest_ts_ms + silence_ms
            or (has_epoch and ts_ms < epoch_ms)
        ):
            break
        energy_wh = PyFloat_AS_DOUBLE(energy_o)
        rise_wh = energy_wh - ref_wh
        # RegisterRules.max_rise_wh, term for term, so the bound is the same float.
        elapsed_ms = ts_ms - ref_ts_ms
        if elapsed_ms < 0:
            elapsed_ms = 0
        if not -tolerance_wh <= rise_wh <= max_power_w * <double>elapsed_ms / MS_PER_HOUR + tolerance_wh:
            break
        # SeenSeqs.add_next (the seen set is written below, once nothing can end the run).
        if tail_high != seq - 1:
            break
        # The hour and the day of the sample, held in C. ``take`` would put the sample in the
        # same buckets, so getting them changes nothing when the run ends here.
        r_hour_ms = ts_ms - ts_ms % HOUR_MS
        if r_hour_ms != hour_ms:
            if held:
                _store(&o, hour, day)
                held = False
            hour = _bucket(aggregates, device_id, hour_key(ts_ms), True)
            run.hour, run.day, run.hour_ms = hour, _bucket(aggregates, device_id, day_key(ts_ms), False), r_hour_ms
            hour_ms = r_hour_ms
        if not held:
            hour, day = run.hour, run.day
            if not _load(&o, hour, day):
                break  # figures of an unexpected type: the general rules take this reading
            held = True
        # The quarters the sample and the energy go to, held before anything is taken.
        if not _quarter(&o, (ts_ms % HOUR_MS) // QUARTER_MS):
            break
        if rise_wh > 0:
            quarter_ms = ts_ms - ts_ms % QUARTER_MS if ts_ms <= ref_ts_ms else ref_ts_ms - ref_ts_ms % QUARTER_MS
            if (
                ts_ms <= quarter_ms + QUARTER_MS
                and quarter_ms - quarter_ms % HOUR_MS == hour_ms
                and not _quarter(&o, (quarter_ms % HOUR_MS) // QUARTER_MS)
            ):
                break
        tail_high = seq
        tail[1] = seq_o
        index += 1
        # The step (``_step``): the cadence learnt, the first reading let go past the late window.
        spacing_ms = ts_ms - newest_ts_ms
        if spacing_ms > 0:
            if has_cadence:
                cadence_ms = (7 * cadence_ms + spacing_ms) // 8
            else:
                cadence_ms, has_cadence = spacing_ms, True
        if head is not None and head_ms < ts_ms - late_ms:
            head = None
        newest_seq, newest_ts_ms, last = seq, ts_ms, r
        # The sample, in the hour, its quarter and the day.
        has_power = power_o is not None
        if has_power:
            power_w = PyFloat_AS_DOUBLE(power_o)
        k = (ts_ms % HOUR_MS) // QUARTER_MS
        # Each figure takes the same operations in the same order as in ``add_sample``; which
        # bucket is done first does not matter, they share no figure.
        o.q[k].samples += 1
        if has_power and (not o.q[k].has_power_max or power_w > o.q[k].power_max_w):
            o.q[k].power_max_w, o.q[k].has_power_max = power_w, True
        _sample(&o.hour, ts_ms, has_power, power_w)
        _sample(&o.day, ts_ms, has_power, power_w)
        # The register (``RegisterTracker.step`` with nothing held).
        if first is not None and ts_ms - first_ms > late_ms:
            first = None
        if rise_wh < 0:
            continue  # a decrease within the tolerance is noise: the higher reference stays
        if rise_wh > 0:
            energy_total_wh += rise_wh
            if ts_ms > quarter_ms + QUARTER_MS or quarter_ms - quarter_ms % HOUR_MS != hour_ms:
                # Across quarters (split by time), or into another hour: the buckets' own code.
                _store(&o, hour, day)
                held = False
                if ts_ms > quarter_ms + QUARTER_MS:
                    run.on_moved(rise_wh, ref_ts_ms, ts_ms)
                else:
                    energy_hour, energy_day = run.bucket(hour_key(quarter_ms)), run.bucket(day_key(quarter_ms))
                    energy_hour.energy_wh += rise_wh
                    energy_hour.quarter(quarter_ms).energy_wh += rise_wh
                    energy_day.energy_wh += rise_wh
            else:
                k = (quarter_ms % HOUR_MS) // QUARTER_MS
                o.hour.energy_wh += rise_wh
                o.q[k].energy_wh += rise_wh
                o.day.energy_wh += rise_wh
            if seq - ref_seq >= 2 and seen.has_gap(ref_seq, seq):
                # A span a late reading may split: no longer the common step.
                register.spans.append(Span(Point(ref_seq, ref_ts_ms, ref_wh), Point(seq_o, ts_o, energy_o), rise_wh))
                ref_seq, ref_ts_ms, ref_wh, last_ref = seq, ts_ms, energy_wh, r
                break
        ref_seq, ref_ts_ms, ref_wh, last_ref = seq, ts_ms, energy_wh, r
    if held:
        _store(&o, hour, day)
    cdef Py_ssize_t taken = index - start
    if taken:
        stats.energy_wh = energy_total_wh
        stats.stored += taken
        state.newest = Point(last.seq, last.ts_ms, last.energy_wh)
        state.newest_power_w = last.power_w
        state.cadence_ms = cadence_ms if has_cadence else None
        state.head, register.first = head, first
        if last_ref is last:
            register.ref = state.newest
        elif last_ref is not None:
            register.ref = Point(last_ref.seq, last_ref.ts_ms, last_ref.energy_wh)
    return index
