# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The decoder's plain path, compiled: the readings of a record whose readings are all plainly valid.

Nearly every record a box sends holds readings that are plainly valid: JSON numbers in range,
``ts`` written as ``YYYY-MM-DDTHH:MM:SS.fffZ`` or ``YYYY-MM-DDTHH:MM:SSZ`` in the years 1970 to
9999. For those, a few type checks per field and a date read digit by digit give exactly what
the wire model (``readings.models.WireReading``) gives, at a small fraction of its cost.
Anything else (a value out of range, another way of writing a time, a missing field, a value
the model would round) makes the whole record take the model's path, which alone decides what
is wrong and why: this path only ever accepts.

``tests/unit/readings/test_readings_plain_path.py`` holds it to the model on arbitrary and
hostile readings.
"""

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.dict cimport PyDict_Next
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.math cimport floor, isfinite

from readings.models import MAX_ELECTRICAL, MAX_POWER_W, MAX_READINGS, MAX_REGISTER_WH, MAX_SEQ, MAX_TS_MS, Reading

if not (issubclass(Reading, tuple) and len(Reading._fields) == 9):
    raise ImportError("Reading is not the nine-field tuple the plain path builds")

cdef extern from "Python.h":
    Py_UCS4 PyUnicode_READ_CHAR(object, Py_ssize_t)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    object PyType_GenericAlloc(PyTypeObject*, Py_ssize_t)


cdef double _MAX_REGISTER_WH = MAX_REGISTER_WH
cdef double _MAX_POWER_W = MAX_POWER_W
cdef double _MAX_ELECTRICAL = MAX_ELECTRICAL
cdef long long _MAX_SEQ = MAX_SEQ
cdef long long _FIRST_YEAR = 1970
cdef long long _LAST_YEAR = 9999

# The keys, as the names orjson gives them compare equal to (and hash alike).
cdef str K_SEQ = "seq"
cdef str K_TS = "ts"
cdef str K_ENERGY = "energy_wh"
cdef str K_POWER = "power_w"
cdef str K_VOLTAGE = "voltage_v"
cdef str K_CURRENT = "current_a"
cdef str K_PF = "pf"
cdef str K_EXPORT = "energy_export_wh"

cdef enum:
    F_SEQ, F_TS, F_ENERGY, F_POWER, F_VOLTAGE, F_CURRENT, F_PF, F_EXPORT, FIELDS
    _OTHER_NAME = -1
    _NOT_A_NAME = -2

# The name objects last seen for each field. A parser hands out the same object for the same
# name again and again (orjson keeps a cache of them), so a field is mostly known by identity;
# a reference is kept so that an object freed and reused for another name cannot match.
cdef PyObject* _names[FIELDS]
cdef tuple _NAMES_TEXT = (K_SEQ, K_TS, K_ENERGY, K_POWER, K_VOLTAGE, K_CURRENT, K_PF, K_EXPORT)


cdef inline int _field(PyObject* key):
    """The field a reading's key names, ``_OTHER_NAME``, or ``_NOT_A_NAME`` (not a str)."""
    cdef int k
    for k in range(FIELDS):
        if _names[k] == key:
            return k
    if type(<object>key) is not str:
        return _NOT_A_NAME
    for k in range(FIELDS):
        if <str>key == <str>_NAMES_TEXT[k]:
            Py_XDECREF(_names[k])
            Py_INCREF(<object>key)
            _names[k] = key
            return k
    return _OTHER_NAME


cdef object _NOT_PLAIN = object()
"""What a value check returns when the model might not take the value as it is."""


cdef inline long long _digits(str ts, Py_ssize_t at, int count):
    """The number ``count`` ASCII digits from ``at`` write, or -1 if one is not an ASCII digit."""
    cdef long long value = 0
    cdef Py_UCS4 c
    cdef int k
    for k in range(count):
        c = PyUnicode_READ_CHAR(ts, at + k)
        if c < 48 or c > 57:
            return -1
        value = value * 10 + (<long long>c - 48)
    return value


cdef inline long long _days_from_civil(long long y, long long m, long long d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    cdef long long era = y // 400
    cdef long long yoe = y - era * 400
    cdef long long mp = m - 3 if m > 2 else m + 9
    cdef long long doy = (153 * mp + 2) // 5 + d - 1
    cdef long long doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int _month_days(long long y, long long m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef inline long long _ts_ms(object value):
    """Epoch ms of a plain ``ts``, or -1 when it is not one (the model decides those)."""
    if type(value) is not str:
        return -1
    cdef str ts = <str>value
    cdef Py_ssize_t n = len(ts)
    cdef long long millis = 0
    if n == 24:
        if PyUnicode_READ_CHAR(ts, 19) != 46 or PyUnicode_READ_CHAR(ts, 23) != 90:  # '.', 'Z'
            return -1
        millis = _digits(ts, 20, 3)
        if millis < 0:
            return -1
    elif n == 20:
        if PyUnicode_READ_CHAR(ts, 19) != 90:  # 'Z'
            return -1
    else:
        return -1
    if (
        PyUnicode_READ_CHAR(ts, 4) != 45  # '-'
        or PyUnicode_READ_CHAR(ts, 7) != 45
        or PyUnicode_READ_CHAR(ts, 10) != 84  # 'T'
        or PyUnicode_READ_CHAR(ts, 13) != 58  # ':'
        or PyUnicode_READ_CHAR(ts, 16) != 58
    ):
        return -1
    cdef long long year = _digits(ts, 0, 4)
    cdef long long month = _digits(ts, 5, 2)
    cdef long long day = _digits(ts, 8, 2)
    cdef long long hour = _digits(ts, 11, 2)
    cdef long long minute = _digits(ts, 14, 2)
    cdef long long second = _digits(ts, 17, 2)
    if (
        year < _FIRST_YEAR
        or year > _LAST_YEAR
        or month < 1
        or month > 12
        or day < 1
        or day > _month_days(year, month)
        or hour < 0
        or hour > 23
        or minute < 0
        or minute > 59
        or second < 0
        or second > 59
    ):
        return -1
    return (
        _days_from_civil(year, month, day) * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis
    )


cdef inline object _value(object value, double low, double high):
    """The value as the wire model stores it (a float rounded to micro-units), or ``_NOT_PLAIN``.

    ``round(v, 6)`` is the model's rule. It is the identity whenever ``v`` is the double nearest
    some number of micro-units, which ``k = v * 1e6`` being whole and ``k / 1e6 == v`` shows (one
    correctly rounded division of an exact integer). Other floats are rounded as the model does.
    """
    cdef double v, micro
    cdef long long whole
    cdef int overflow = 0
    if type(value) is float:
        v = PyFloat_AS_DOUBLE(value)
        micro = v * 1e6
        if not (isfinite(micro) and floor(micro) == micro and micro / 1e6 == v):
            value = round(value, 6)
            v = PyFloat_AS_DOUBLE(value)
        # NaN fails both comparisons.
        if low <= v <= high:
            return value
        return _NOT_PLAIN
    if type(value) is int:
        whole = PyLong_AsLongLongAndOverflow(value, &overflow)
        # Beyond 2**53 a double no longer holds every integer: the model decides those.
        if overflow or whole > 9007199254740992 or whole < -9007199254740992:
            return _NOT_PLAIN
        v = <double>whole
        if low <= v <= high:
            return PyFloat_FromDouble(v)
    return _NOT_PLAIN


cdef inline void _put(object item, Py_ssize_t at, object value):
    # PyTuple_SET_ITEM takes the reference it is given.
    Py_INCREF(value)
    PyTuple_SET_ITEM(item, at, value)


cdef inline object _optional(object value, double low, double high):
    if value is None:
        return None
    return _value(value, low, high)


def plain_readings(str device_id not None, list readings not None, long long earliest_ok_ms, long long latest_ok_ms):
    """``(readings, [(index, ts_ms), ...])`` of a record whose readings are all plainly valid, else None.

    The second list holds the readings whose ``ts`` lies outside ``[earliest_ok_ms,
    latest_ok_ms]``, for the caller to reject with the model's details. Each ``Reading`` (a named
    tuple) is built here without a Python call.
    """
    cdef list out = []
    cdef list outside = []
    cdef Py_ssize_t index, n = len(readings)
    cdef object raw, seq_o, ts_o, e, p, v, c, pf, x, item
    cdef object value
    cdef int field
    cdef Py_ssize_t pos
    cdef PyObject* key_p
    cdef PyObject* value_p
    cdef long long seq, ts_ms
    cdef int overflow = 0
    cdef dict d
    cdef PyTypeObject* cls = <PyTypeObject*>Reading
    for index in range(n):
        raw = readings[index]
        if type(raw) is not dict:
            return None
        d = <dict>raw
        # One pass over the reading's fields (a look-up per field would hash and compare each
        # name again); other fields are ignored, as the model ignores them.
        seq_o = ts_o = e = p = v = c = pf = x = None
        pos = 0
        while PyDict_Next(d, &pos, &key_p, &value_p):
            field = _field(key_p)
            if field < 0:
                if field == _NOT_A_NAME:
                    return None
                continue
            value = <object>value_p
            if field == F_SEQ:
                seq_o = value
            elif field == F_TS:
                ts_o = value
            elif field == F_ENERGY:
                e = value
            elif field == F_POWER:
                p = value
            elif field == F_VOLTAGE:
                v = value
            elif field == F_CURRENT:
                c = value
            elif field == F_PF:
                pf = value
            else:
                x = value
        if type(seq_o) is not int:
            return None
        seq = PyLong_AsLongLongAndOverflow(seq_o, &overflow)
        if overflow or seq < 0 or seq > _MAX_SEQ:
            return None
        ts_ms = _ts_ms(ts_o)
        if ts_ms < 0:
            return None
        e = _value(e, 0.0, _MAX_REGISTER_WH)
        if e is _NOT_PLAIN:
            return None
        p = _optional(p, 0.0, _MAX_POWER_W)
        if p is _NOT_PLAIN:
            return None
        v = _optional(v, 0.0, _MAX_ELECTRICAL)
        if v is _NOT_PLAIN:
            return None
        c = _optional(c, 0.0, _MAX_ELECTRICAL)
        if c is _NOT_PLAIN:
            return None
        pf = _optional(pf, -1.0, 1.0)
        if pf is _NOT_PLAIN:
            return None
        x = _optional(x, 0.0, _MAX_REGISTER_WH)
        if x is _NOT_PLAIN:
            return None
        if not earliest_ok_ms <= ts_ms <= latest_ok_ms:
            outside.append((index, ts_ms))
            continue
        # What tuple.__new__(Reading, ...) does, without building the argument tuple first.
        item = PyType_GenericAlloc(cls, 9)
        _put(item, 0, device_id)
        _put(item, 1, seq_o)
        _put(item, 2, ts_ms)
        _put(item, 3, e)
        _put(item, 4, p)
        _put(item, 5, v)
        _put(item, 6, c)
        _put(item, 7, pf)
        _put(item, 8, x)
        out.append(item)
    return out, outside


cdef inline bint _thing_name(str value):
    """``readings.models.is_thing_name``: 1 to 128 of ``A-Z a-z 0-9 : _ -``."""
    cdef Py_ssize_t k, n = len(value)
    cdef Py_UCS4 c
    if n < 1 or n > 128:
        return False
    for k in range(n):
        c = PyUnicode_READ_CHAR(value, k)
        if not (
            (c >= 48 and c <= 58)  # 0-9 and ':'
            or (c >= 65 and c <= 90)
            or (c >= 97 and c <= 122)
            or c == 95  # '_'
            or c == 45  # '-'
        ):
            return False
    return True


cdef long long _LIMIT_MS = 2**61
cdef long long _MAX_TS_MS = MAX_TS_MS
cdef Py_ssize_t _MAX_READINGS = MAX_READINGS


def plain_record(
    object doc, object partition_key, object fallback_received_ms, object future_tolerance_ms, object max_age_ms
):
    """``(device_id, readings, [(index, ts_ms), ...], received_ms)`` of a parsed record that is plainly
    valid whole: a version 1 envelope whose thing is its device id and its partition key, and
    readings ``plain_readings`` takes. None for anything else (``decode_record`` decides those).
    """
    cdef long long received, fallback, tolerance, max_age
    cdef int overflow = 0
    if type(doc) is not dict:
        return None
    cdef dict d = <dict>doc
    version = d.get("v")
    if type(version) is not int or version != 1:
        return None
    device_id, thing, readings = d.get("device_id"), d.get("thing"), d.get("readings")
    if type(device_id) is not str or type(thing) is not str or type(readings) is not list:
        return None
    if device_id != thing or not _thing_name(<str>thing):
        return None
    if partition_key is not None and not (type(partition_key) is str and partition_key == thing):
        return None
    n = len(<list>readings)
    if n < 1 or n > _MAX_READINGS:
        return None
    if (
        type(fallback_received_ms) is not int
        or type(future_tolerance_ms) is not int
        or type(max_age_ms) is not int
    ):
        return None
    fallback = PyLong_AsLongLongAndOverflow(fallback_received_ms, &overflow)
    if overflow or not -_LIMIT_MS < fallback < _LIMIT_MS:
        return None
    tolerance = PyLong_AsLongLongAndOverflow(future_tolerance_ms, &overflow)
    if overflow or not 0 <= tolerance < _LIMIT_MS:
        return None
    max_age = PyLong_AsLongLongAndOverflow(max_age_ms, &overflow)
    if overflow or not 0 <= max_age < _LIMIT_MS:
        return None
    value = d.get("received_ms")
    received = fallback
    if type(value) is int:
        received = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow or not 0 <= received <= _MAX_TS_MS:
            received = fallback
    elif type(value) is not bool and isinstance(value, int):
        return None  # an int of another type: not what JSON gives
    plain = plain_readings(<str>device_id, <list>readings, received - max_age, received + tolerance)
    if plain is None:
        return None
    return device_id, plain[0], plain[1], received
