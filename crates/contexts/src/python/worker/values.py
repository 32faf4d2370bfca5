# worker/values.py: Packing values into section 6's JSON forms and unpacking inputs.
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
# ---------------------------------------------------------------------------
# Packing values


# Functions that may run user code (__repr__, __str__, __lt__) catch Exception, never
# BaseException: a KeyboardInterrupt (an interrupt, or a timeout) must end the call.


def short_repr(value):
    try:
        text = repr(value)
    except Exception:
        return "<%s object>" % type_name(value)
    if not isinstance(text, str):
        return "<%s object>" % type_name(value)
    return clip(text, REPR_CAP)


def type_name(value):
    try:
        return type(value).__name__
    except Exception:
        return "object"


def module_of(value):
    module = getattr(type(value), "__module__", None)
    return module if isinstance(module, str) else ""


class TooBig(Exception):
    """A value whose JSON form would not fit in a reply."""


# The bytes a value being packed may still take, roughly (a lower bound): packing stops
# early, before building or encoding a form that could never be sent.
BUDGET = [0]


def charge(size):
    BUDGET[0] -= size
    if BUDGET[0] < 0:
        raise TooBig()


def too_big_text(value, size=None):
    """The error for a value too big to send: what it is, its size where known, the limit."""
    what = "a " + type_name(value)
    if type(value) in (str, bytes, bytearray, list, tuple, dict, set, frozenset):
        what += " of %d %s" % (len(value), "characters" if type(value) is str else "items")
    if size is None:
        form = "its JSON form is longer than the limit of %d bytes for a reply" % MAX_REPLY
    else:
        form = "its JSON form is %d bytes, over the limit of %d bytes for a reply" % (size, MAX_REPLY)
    return "the value (%s) is too big to send: %s" % (what, form)


def int_text(value):
    """The decimal form of an int; None beyond sys.get_int_max_str_digits()."""
    try:
        return str(int(value))
    except ValueError:
        return None


def integer_data(value):
    if -SAFE_INT <= value <= SAFE_INT:
        return int(value)
    return int_text(value)


def huge_int_text(value):
    return "<an integer of %d bits, more digits than sys.get_int_max_str_digits() allows>" % value.bit_length()


def is_missing(value):
    """pandas' NA and NaT, which are null in JSON."""
    return type_name(value) in ("NAType", "NaTType") and module_of(value).startswith("pandas")


def base64(data):
    return binascii.b2a_base64(bytes(data), newline=False).decode("ascii")


def key_text(key):
    if isinstance(key, str):
        return str(key)
    try:
        text = str(key)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    return short_repr(key)


def sorted_if_possible(items):
    items = list(items)
    try:
        return sorted(items)
    except Exception:
        return items


def object_native(value, depth, active):
    """The JSON object for a dict; None when two keys have the same text (`{1: 'a', '1': 'b'}`)."""
    result = {}
    for k, v in value.items():
        text = key_text(k)
        charge(len(text) + 4)
        result[text] = native(v, depth + 1, active)
    return result if len(result) == len(value) else None


def native(value, depth, active):
    """A JSON-native form of a value inside an array or object."""
    if value is None or value is True or value is False:
        charge(5)
        return value
    if isinstance(value, str):
        charge(len(value) + 3)
        return str(value)
    if isinstance(value, int):
        charge(2)
        text = integer_data(value)
        if text is None:
            text = huge_int_text(value)
        return text
    if isinstance(value, float):
        charge(4)
        return float(value) if math.isfinite(value) else None
    if is_missing(value):
        charge(5)
        return None
    if depth >= MAX_DEPTH:
        return charged(short_repr(value))
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        key = id(value)
        if key in active:
            return "{...}" if isinstance(value, dict) else "[...]"
        active.add(key)
        try:
            charge(2)
            if isinstance(value, dict):
                result = object_native(value, depth, active)
                return charged(short_repr(value)) if result is None else result
            if isinstance(value, (set, frozenset)):
                value = sorted_if_possible(value)
            return [native(item, depth + 1, active) for item in value]
        finally:
            active.discard(key)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return charged(base64_of(value))
    if module_of(value) == "numpy":
        converted = numpy_native(value)
        if converted is not value:
            return native(converted, depth + 1, active)
    return charged(short_repr(value))


def charged(text):
    charge(len(text) + 3)
    return text


def base64_of(value):
    charge(memoryview(value).nbytes * 4 // 3)
    return base64(value)


def numpy_native(value):
    """A plain Python value for a numpy scalar or array; the value itself otherwise."""
    try:
        if hasattr(value, "tolist") and hasattr(value, "dtype"):
            return value.tolist()
    except Exception:
        pass
    return value


def pack(value):
    """The packed form of a value: {"type": ..., "data": ...} (PROTOCOL.md section 6).

    Raises KeyboardInterrupt (falling back to repr() could run the same endless user
    code again) and TooBig (a value whose JSON form would not fit in a reply)."""
    BUDGET[0] = MAX_REPLY if MAX_REPLY is not None else float("inf")
    try:
        return pack_unguarded(value)
    except (KeyboardInterrupt, TooBig):
        raise
    except Exception as error:
        BUDGET[0] = float("inf")  # the repr is clipped
        return {"type": type_name(value), "data": short_repr(value), "error": describe(error)}


def pack_or_error(value):
    """`pack`, with an interrupt or a value too big to send as an error in the packed value."""
    try:
        return pack(value)
    except KeyboardInterrupt:
        return {"type": type_name(value), "data": None, "error": INTERRUPTED_PACKING}
    except TooBig:
        return {"type": type_name(value), "data": None, "error": too_big_text(value)}


INTERRUPTED_PACKING = "KeyboardInterrupt: interrupted while converting the value"


def pack_unguarded(value):
    if value is None:
        return {"type": "null", "data": None}
    if isinstance(value, bool):
        return {"type": "boolean", "data": bool(value)}
    if isinstance(value, int):
        text = integer_data(value)
        if text is None:
            # Not an integer the receiver could read: the fallback of any other type.
            return {"type": type_name(value), "data": huge_int_text(value)}
        return {"type": "integer", "data": text}
    if isinstance(value, float):
        return {"type": "number", "data": float(value) if math.isfinite(value) else None}
    if isinstance(value, str):
        charge(len(value) + 2)
        return {"type": "string", "data": str(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return {"type": "array", "data": native(value, 0, set())}
    if isinstance(value, dict):
        data = native(value, 0, set())
        if isinstance(data, str):
            # Two keys with the same text: an object would silently lose one.
            return {"type": type_name(value), "data": data}
        return {"type": "object", "data": data}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "bytes", "data": base64_of(value), "encoding": "base64"}
    if is_missing(value):
        return {"type": "null", "data": None}
    module = module_of(value)
    name = type_name(value)
    if module.startswith("pandas") and name == "DataFrame":
        return pack_table(value)
    if module.startswith("matplotlib") and name == "Figure":
        return pack_figure(value)
    if module == "numpy":
        converted = numpy_native(value)
        if converted is not value:
            return pack_unguarded(converted)
    return {"type": name, "data": short_repr(value)}


COLUMN_TYPES = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}


def pack_table(frame):
    columns = []
    for index in range(frame.shape[1]):
        series = frame.iloc[:, index]
        kind = series.dtype.kind
        if kind in "mM":
            missing = series.isna().tolist()
            texts = series.astype(str).tolist()
            values = [None if gap else charged(str(text)) for gap, text in zip(missing, texts)]
            column_type = "string"
        else:
            values = [native(v, 1, set()) for v in series.tolist()]
            column_type = COLUMN_TYPES.get(kind)
            if column_type is None:
                strings = all(v is None or isinstance(v, str) for v in values)
                column_type = "string" if strings else "object"
        columns.append({"name": key_text(frame.columns[index]), "type": column_type, "values": values})
    return {"type": "table", "data": {"columns": columns}}


def pack_figure(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    charge(buffer.tell() * 4 // 3)
    return {"type": "image", "src": "data:image/png;base64," + base64(buffer.getvalue())}


def packed_type(value):
    """The type `pack` would give, without packing (for `list`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    module = module_of(value)
    name = type_name(value)
    if module.startswith("pandas") and name == "DataFrame":
        return "table"
    if module.startswith("matplotlib") and name == "Figure":
        return "image"
    return name


def unpack(packed, what):
    """The Python value of a packed value sent by the host."""
    if not isinstance(packed, dict) or not isinstance(packed.get("type"), str):
        raise ArgumentError(
            '%s must be a packed value such as {"type": "integer", "data": 1}' % what
        )
    kind = packed["type"]
    data = packed.get("data")

    def wrong(expected):
        return ArgumentError("%s: a value of type '%s' needs %s as its data" % (what, kind, expected))

    if kind == "null":
        return None
    if kind == "boolean":
        if not isinstance(data, bool):
            raise wrong("true or false")
        return data
    if kind == "integer":
        if isinstance(data, bool):
            raise wrong("an integer")
        if isinstance(data, int):
            return data
        if isinstance(data, float) and data.is_integer():
            return int(data)
        if isinstance(data, str):
            try:
                return int(data)
            except ValueError:
                pass
        raise wrong("an integer (or its decimal string)")
    if kind == "number":
        if data is None:
            return math.nan
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        raise wrong("a number")
    if kind == "string":
        if not isinstance(data, str):
            raise wrong("a string")
        return data
    if kind == "array":
        if not isinstance(data, list):
            raise wrong("an array")
        return data
    if kind == "object":
        if not isinstance(data, dict):
            raise wrong("an object")
        return data
    if kind == "bytes":
        try:
            return binascii.a2b_base64(data)
        except Exception:
            raise wrong("a base64 string") from None
    if kind == "table":
        columns = data.get("columns") if isinstance(data, dict) else None
        if not isinstance(columns, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("values"), list)
            for c in columns
        ):
            raise wrong('{"columns": [{"name": ..., "values": [...]}, ...]}')
        table = {c["name"]: c["values"] for c in columns}
        if len(table) != len(columns):
            raise ArgumentError("%s: two columns of the table have the same name" % what)
        if len({len(c["values"]) for c in columns}) > 1:
            raise ArgumentError("%s: the columns of a table must all have the same number of values" % what)
        try:
            import pandas
        except ImportError:
            return table
        try:
            return pandas.DataFrame(table)
        except Exception as error:
            raise ArgumentError("%s: not a table pandas accepts: %s" % (what, describe(error))) from None
    raise ArgumentError("%s: cannot unpack a value of type '%s'" % (what, kind))

