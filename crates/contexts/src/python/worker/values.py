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
            return native_items(value, depth, active)
        finally:
            active.discard(key)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return charged(base64_of(value))
    if module_of(value) == "numpy":
        converted = numpy_native(value)
        if converted is not value:
            return native(converted, depth + 1, active)
    return charged(short_repr(value))


def native_items(items, depth, active):
    """The JSON-native forms of the items of an array (at depth + 1): pre-encoded at C
    speed where `fast_items` can prove it gives the same text, else item by item."""
    if type(items) is list or type(items) is tuple:
        fragment = fast_items(items)
        if fragment is None and depth + 1 < MAX_DEPTH:
            fragment = fast_rows(items)
        if fragment is not None:
            return fragment
    return [native(item, depth + 1, active) for item in items]


# ---------------------------------------------------------------------------
# Packing at C speed (issue 9): a big array of plain numbers or strings is encoded by
# the C JSON encoder in one call per chunk, not walked item by item in Python, and the
# text goes into the reply as a pre-encoded Fragment (never parsed or encoded again).
# It must give exactly the text, and charge exactly the budget, of the walk in `native`,
# so it only takes chunks whose items are all of one exact type (int, float, str or
# bool, and None), which the walk packs as themselves:
# - bool is not int here: [1, True] has two types and takes the walk;
# - subclasses (IntEnum, a str with its own __str__, a float subclass) take the walk;
# - ints must lie in the safe range (checked with min/max), else the walk makes them
#   decimal strings;
# - floats are encoded with NaN and infinities allowed, which then become null (the
#   text of a finite float never holds "N" or "I").
# An array of short rows (lists, tuples, or dicts with str keys) of such scalars is
# encoded the same way (`fast_rows`). Anything else, and any chunk that fails a check,
# takes the walk. pack_tests.py (run by python/tests.rs) compares the two byte for byte.

# Arrays shorter than this take the walk: the checks would cost more than they save.
# None turns the fast path off (the differential tests compare both).
FAST_MIN = 32
# Items encoded per C call: between chunks an interrupt (or a timeout) gets through
# and the budget is charged, so a huge array stops early and never blocks a SIGINT
# for long.
FAST_CHUNK = 1 << 16
NONE_TYPE = type(None)
FAST_TYPES = (int, float, str, bool)
_encode_floats = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


class Fragment:
    """Pre-encoded JSON text, in parts written one after another: a str as it is, a
    1-tuple (text,) as text[1:-1] (a JSON array without its brackets: a chunk of
    `fast_items`; the brackets are left out without copying the text). `strings` is True
    when every item it holds is a string or null (a table's column type)."""

    __slots__ = ("parts", "strings")

    def __init__(self, parts, strings=False):
        self.parts = parts
        self.strings = strings

    def texts(self):
        """The JSON text, as strings to be joined."""
        return [part if type(part) is str else part[0][1:-1] for part in self.parts]

    def buffers(self):
        """The JSON text, as UTF-8 buffers to be written (a lone surrogate becomes "?",
        as in a whole reply's encoding)."""
        return [
            part.encode("utf-8", "replace") if type(part) is str
            else memoryview(part[0].encode("utf-8", "replace"))[1:-1]
            for part in self.parts
        ]


def fast_items(items, none_cost=5):
    """A Fragment with the JSON text of a list or tuple of plain scalars, charged as the
    walk in `native` would charge it (`none_cost` per None); None when it does not
    apply, with nothing charged."""
    count = len(items)
    if FAST_MIN is None or count < FAST_MIN or not count:
        return None
    budget = BUDGET[0]
    parts = ["["]
    strings = True
    for start in range(0, count, FAST_CHUNK):
        chunk = items if count <= FAST_CHUNK else items[start:start + FAST_CHUNK]
        kind = fast_chunk(chunk, none_cost)
        if kind is None:
            BUDGET[0] = budget
            return None
        if start:
            parts.append(",")
        if kind is float:
            parts.append((floats_json(chunk),))
        elif kind is str:
            parts.extend(strings_parts(chunk))
        else:
            parts.append((_dumps_plain(chunk),))
            if kind is not NONE_TYPE:
                strings = False
        if kind is float:
            strings = False
    parts.append("]")
    return Fragment(parts, strings)


# Rows: an array of short lists or tuples (a query's result), or of short dicts with
# str keys (records), of plain scalars, encoded ROWS_CHUNK rows per C call. Longer rows
# take the walk, which packs each list or tuple with `fast_items`.
ROW_MAX = 64
ROWS_CHUNK = 1 << 12
ROW_TYPES = {list, tuple}
DICT_TYPE = {dict}
STR_TYPE = {str}
ROW_ITEM_TYPES = {int, float, str, bool, NONE_TYPE}


def fast_rows(items):
    """A Fragment with the JSON text of a list or tuple of rows, charged as the walk would
    charge it; None when it does not apply, with nothing charged."""
    count = len(items)
    if FAST_MIN is None or count < FAST_MIN or not count:
        return None
    budget = BUDGET[0]
    parts = ["["]
    for start in range(0, count, ROWS_CHUNK):
        chunk = items if count <= ROWS_CHUNK else items[start:start + ROWS_CHUNK]
        text = rows_json(chunk)
        if text is None:
            BUDGET[0] = budget
            return None
        if start:
            parts.append(",")
        parts.append((text,))
    parts.append("]")
    return Fragment(parts)


def rows_json(chunk):
    """A chunk of rows as JSON, after charging for it; None, charging nothing, where a row
    is not a short list, tuple or dict of scalars the C encoder writes as the walk does
    (the same rules as `fast_chunk`; a dict's keys must be exact strs, which the walk
    keeps as they are; a non-finite float sends the rows to the walk)."""
    row_types = set(map(type, chunk))
    if not (row_types <= ROW_TYPES or row_types == DICT_TYPE) or max(map(len, chunk)) > ROW_MAX:
        return None
    size = 2 * len(chunk)
    if row_types <= ROW_TYPES:
        flat = [item for row in chunk for item in row]
    elif row_types == DICT_TYPE:
        keys = [key for row in chunk for key in row]
        if keys and set(map(type, keys)) != STR_TYPE:
            return None
        size += sum(map(len, keys)) + 4 * len(keys)
        flat = [item for row in chunk for item in row.values()]
    types = set(map(type, flat))
    if not types <= ROW_ITEM_TYPES:
        return None
    others = len(flat)  # bools and None: 5 each
    if int in types:
        ints = [item for item in flat if type(item) is int]
        if min(ints) < -SAFE_INT or max(ints) > SAFE_INT:
            return None
        size += 2 * len(ints)
        others -= len(ints)
    if float in types:
        floats = [item for item in flat if type(item) is float]
        if not math.isfinite(sum(floats)):
            return None
        size += 4 * len(floats)
        others -= len(floats)
    if str in types:
        texts = [item for item in flat if type(item) is str]
        size += sum(map(len, texts)) + 3 * len(texts)
        others -= len(texts)
    charge(size + 5 * others)
    return _dumps_plain(chunk)


def fast_chunk(chunk, none_cost):
    """The one exact type of a chunk's items other than None (NONE_TYPE where all are
    None), after charging for it; None, charging nothing, where the chunk has items
    the C encoder would write differently from the walk."""
    types = set(map(type, chunk))
    has_none = NONE_TYPE in types
    types.discard(NONE_TYPE)
    if len(types) > 1:
        return None
    if not types:
        charge(none_cost * len(chunk))
        return NONE_TYPE
    kind = types.pop()
    if kind not in FAST_TYPES:
        return None
    values = [item for item in chunk if item is not None] if has_none else chunk
    count = len(values)
    nones = len(chunk) - count
    if kind is int:
        if min(values) < -SAFE_INT or max(values) > SAFE_INT:
            return None  # the walk sends these as decimal strings
        charge(2 * count + none_cost * nones)
    elif kind is float:
        charge(4 * count + none_cost * nones)
    elif kind is str:
        charge(sum(map(len, values)) + 3 * count + none_cost * nones)
    else:
        charge(5 * count + none_cost * nones)  # bool
    return kind


def floats_json(chunk):
    """A chunk of floats (and None) as JSON, NaN and infinities as null."""
    text = _encode_floats(chunk)
    if "N" in text:
        text = text.replace("NaN", "null")
    if "I" in text:
        text = text.replace("-Infinity", "null").replace("Infinity", "null")
    return text


def strings_parts(chunk):
    """A chunk of strings (and None) as Fragment parts. Strings with nothing to escape
    (no quote, backslash or control character: the encoder escapes nothing else when it
    keeps non-ASCII) are joined, faster than the encoder writes them one by one."""
    if None not in chunk:
        body = '","'.join(chunk)
        if body.count('"') == 2 * (len(chunk) - 1) and "\\" not in body and body.isprintable():
            return ['"', body, '"']
    return [(_dumps_plain(chunk),)]


# Strings at least this long are packed as Fragments.
FAST_STRING = 1 << 12


def string_data(text):
    """A string's data: a long one as a Fragment, so the reply never copies it whole
    into one text; one with nothing to escape (isprintable: no control characters) is
    not even copied by the encoder."""
    if FAST_MIN is None or len(text) < FAST_STRING:
        return text
    if '"' not in text and "\\" not in text and text.isprintable():
        return Fragment(['"', text, '"'])
    return Fragment([_encode_basestring(text)])


# The reply's JSON. `_dumps` (setup.py) becomes the encoder that writes Fragments'
# text in place: every caller (the reply, the pointers' size check) gets the same text.
_dumps_plain = _dumps
_json_default = json.JSONEncoder.default
_JSONEncoder = json.JSONEncoder
_encode_basestring = getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
# Stands for a Fragment in the encoded skeleton; random, so no string in a reply can
# be taken for it.
FRAGMENT_MARK = "stencila-fragment-" + binascii.hexlify(os.urandom(16)).decode("ascii")
QUOTED_FRAGMENT_MARK = _dumps_plain(FRAGMENT_MARK)


def json_pieces(value):
    """The JSON text of `value` (a reply frame, a packed value) as strings and Fragments
    to be written in order: the Fragments' text is not copied into the rest."""
    fragments = []

    def default(item):
        if type(item) is Fragment:
            fragments.append(item)
            return FRAGMENT_MARK
        return _json_default(encoder, item)

    encoder = _JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=default)
    text = encoder.encode(value)
    if not fragments:
        return [text]
    pieces = text.split(QUOTED_FRAGMENT_MARK)
    if len(pieces) != len(fragments) + 1:
        raise ValueError("a pre-encoded part of the reply could not be placed")
    result = [pieces[0]]
    for fragment, piece in zip(fragments, pieces[1:]):
        result.append(fragment)
        result.append(piece)
    return result


def json_size(value):
    """The UTF-8 size of `_dumps(value)`, summed over its pieces instead of joining them
    (a 6 MB table's text is not copied once more just to be measured)."""
    size = 0
    for piece in json_pieces(value):
        if type(piece) is Fragment:
            for part in piece.parts:
                size += utf8_size(part) if type(part) is str else utf8_size(part[0]) - 2
        else:
            size += utf8_size(piece)
    return size


def _dumps(value):
    texts = []
    for piece in json_pieces(value):
        if type(piece) is Fragment:
            texts.extend(piece.texts())
        else:
            texts.append(piece)
    return "".join(texts)


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
        return {"type": "string", "data": string_data(str(value))}
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
            # A missing value is null and charged nothing, as in the walk below.
            items = [None if gap else text for gap, text in zip(missing, texts)] if True in missing else texts
            values = fast_items(items, none_cost=0)
            if values is None:
                values = [None if gap else charged(str(text)) for gap, text in zip(missing, texts)]
            column_type = "string"
        else:
            values = native_items(series.tolist(), 0, set())
            column_type = COLUMN_TYPES.get(kind)
            if column_type is None:
                if type(values) is Fragment:
                    strings = values.strings
                else:
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

