"""Differential tests of the worker's fast packing (issue 9), run by python/tests.rs
after the worker script (less its `main()`): for a broad corpus of values, the reply
with the fast paths on (FAST_MIN = 0, tiny chunks, every string a Fragment) must be
byte for byte the reply with them off (FAST_MIN = None: the walk item by item, as
before the fast paths), and charge the same budget. numpy and pandas cases are
skipped, with a note on stdout, where those are not installed. Prints "ok <count>"."""

import enum

CHECKED = [0]


def reply_bytes(value):
    frame = {"id": 7, "result": {"messages": [{"type": "stdout", "message": "hi"}], "value": pack_or_pointer(value)}}
    joined = b"".join(bytes(buffer) for buffer in encode_buffers(frame))
    text = _dumps(frame)
    assert joined == text.encode("utf-8", "replace"), "encode_buffers and _dumps differ"
    packed = frame["result"]["value"]
    assert json_size(packed) == utf8_size(_dumps(packed)), "json_size and the size of _dumps differ"
    return joined


def charged_by(value):
    """The budget `pack` charges for the value (TooBig must come at the same size)."""
    global MAX_REPLY
    saved = MAX_REPLY
    MAX_REPLY = 1 << 60
    try:
        pack(value)
        return (1 << 60) - BUDGET[0]
    except TooBig:
        return "TooBig"
    finally:
        MAX_REPLY = saved


def sent_bytes(value, limit):
    """The reply line `send_unlocked` writes for an execute whose value is `value`,
    with `limit` as the longest reply (a value over it becomes an error message)."""
    global MAX_REPLY, write_buffers
    saved = MAX_REPLY, write_buffers
    lines = []
    MAX_REPLY = limit
    HOLDER_COUNT[0] = 0  # a pointer's holder is named by a count
    HOLDERS.clear()
    write_buffers = lambda buffers: lines.append(b"".join(bytes(buffer) for buffer in buffers))
    try:
        try:
            packed, messages = pack_or_pointer(value), []
        except TooBig:
            packed, messages = None, [{"type": "error", "message": too_big_text(value)}]
        send_unlocked({"id": 7, "result": {"messages": messages, "value": packed}})
    finally:
        MAX_REPLY, write_buffers = saved
    return lines[0]


LIMITS = [None, 60, 400, 5000, 100000]


def packed_with(value, fast):
    global FAST_MIN, FAST_CHUNK, FAST_STRING
    saved = FAST_MIN, FAST_CHUNK, FAST_STRING
    if fast:
        FAST_MIN, FAST_CHUNK, FAST_STRING = 0, 3, 0
    else:
        FAST_MIN = None
    try:
        return reply_bytes(value), charged_by(value), [sent_bytes(value, limit) for limit in LIMITS]
    finally:
        FAST_MIN, FAST_CHUNK, FAST_STRING = saved


def check(name, value):
    slow = packed_with(value, False)
    fast = packed_with(value, True)
    assert fast[0] == slow[0], "%s: the fast reply differs\n fast: %r\n slow: %r" % (name, fast[0][:2000], slow[0][:2000])
    assert fast[1] == slow[1], "%s: the fast path charges %r, the walk %r" % (name, fast[1], slow[1])
    for limit, fast_line, slow_line in zip(LIMITS, fast[2], slow[2]):
        assert fast_line == slow_line, "%s: with replies of at most %r bytes, fast sends\n %r\nthe walk\n %r" % (
            name, limit, fast_line[:2000], slow_line[:2000])
    CHECKED[0] += 1


class Colour(enum.IntEnum):
    RED = 1
    GREEN = 2


class Shout(str):
    def __str__(self):
        return self.upper()


class Halved(float):
    def __float__(self):
        return 0.5


class Big(int):
    def __int__(self):
        return 99


def plain_cases():
    nan, inf = float("nan"), float("inf")
    safe = (1 << 53) - 1
    floats = [0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, 1e16, 1e-7, 0.1 + 0.2, 123456789.123, 1 / 3]
    texts = ["", "a", "é", "日本", "\ud800", "\x00", '"', "\\", "\n", "\t", "\x7f", "\u2028", "emoji \U0001F600", "NaN", "Infinity", "null"]
    cases = {
        "empty list": [],
        "empty tuple": (),
        "one int": [1],
        "ints": [3, -1, 0, 2, 7],
        "ints tuple": (1, 2, 3, 4),
        "bools": [True, False, True],
        "int then bool": [1, True],
        "bool then int": [True, 1, 0, False],
        "int and float": [1, 2.0, 3],
        "nones": [None, None],
        "ints and None": [1, None, 3, None],
        "floats and None": [1.5, None, nan],
        "strs and None": ["a", None, "b"],
        "bools and None": [None, True, False],
        "floats": floats,
        "non-finite": [nan, inf, -inf, 1.0, -inf, nan],
        "only NaN": [nan, nan, nan],
        "safe edges": [safe, -safe, 0],
        "2**53": [1 << 53, 1],
        "-2**53": [1, -(1 << 53)],
        "2**53+1": [(1 << 53) + 1],
        "2**100": [1 << 100, 2, 3],
        "huge int": [10 ** 5000],
        "IntEnum": [Colour.RED, Colour.GREEN, Colour.RED],
        "IntEnum and int": [1, Colour.GREEN, 3],
        "str subclass": [Shout("quiet"), "plain", Shout("x")],
        "float subclass": [Halved(2.0), 1.0, 3.0],
        "int subclass": [Big(5), 1, 2],
        "texts": texts,
        "texts and None": texts + [None],
        # Each escape alone (a list with a control character is rejected on that alone).
        "quotes": ['say "hi"', "x", '"', '""'],
        "backslashes": ["a\\b", "c:\\dir\\", "\\"],
        "a quote and a backslash": ['\\"', "x"],
        "printable non-ASCII": ["é", "日本", "ñandú", "emoji \U0001F600"],
        "non-printable non-ASCII": ["a", "\u2028", "\xa0", "\u200b"],
        "many strings": ["name %d" % i for i in range(300)],
        "nested": [[1, 2], [3, 4], [5.5, nan], ["a", "b"], []],
        "same list twice": [[1, 2, 3]] * 3,
        "set": {3, 1, 2, 5, 4},
        "frozenset of strs": frozenset(["b", "a", "c", "d"]),
        "mixed set": {1, "a"},
        "dict of lists": {"a": [1, 2, 3], "b": [0.5, nan], "c": ["x", None], 1: (True, False)},
        "tuple of tuples": ((1, 2), (3.5, None), ("q",)),
        "many ints": list(range(-50, 1000)),
        "many floats": [i / 7 for i in range(500)] + [nan] * 3 + [inf],
        "chunks of different types": [1, 2, 3, 1.5, 2.5, 3.5, "a", "b", "c", None, None, None, True, False, True],
        "a chunk with a big int": [1, 2, 3, 4, 5, 6, 1 << 60],
        "a chunk with a bool": [1, 2, 3, 4, 5, True],
        "list of bytes": [b"ab", b"cd"],
        "rows": [(i, i / 2, "n%d" % i, i % 2 == 0, None) for i in range(300)],
        "rows as lists": [[i, -i, "x"] for i in range(100)],
        "rows of mixed kinds": [(1, "a"), [2.5, None], (), [True, False], ("q",)] * 10,
        "rows with NaN": [(1, 0.5), (2, nan), (3, 1.5)],
        "rows with inf": [(1.0, inf), (2.0, -inf)],
        "rows with an unsafe int": [(1, 2), (3, 1 << 53)],
        "rows with a big int": [(1, 2), (3, 1 << 100)],
        "rows with a negative unsafe int": [(1, 2), (3, -(1 << 53))],
        "rows with an IntEnum": [(1, Colour.RED), (2, 3)],
        "rows with a str subclass": [("a", Shout("b")), ("c", "d")],
        "rows with escapes": [('say "hi"', "a\\b", "\n", "é", "\ud800")] * 5,
        "rows with a nested list": [(1, [2, 3]), (4, [5])],
        "rows with a dict": [(1, {"a": 1}), (2, {})],
        "long rows": [list(range(100)), list(range(100, 200))],
        "a long row among short": [[1, 2]] * 5 + [list(range(70))],
        "empty rows": [[], (), []],
        "same row object": [[1, 2.5, "x"]] * 40,
        "rows of a list subclass": [Colour.__class__ and type("Row", (list,), {})([1, 2]), [3, 4]],
        "many rows": [(i, i / 7, str(i)) for i in range(10000)],
        "records": [{"i": i, "f": i / 3, "s": "n%d" % i, "b": i % 2 == 0, "n": None} for i in range(300)],
        "records of different keys": [{"a": 1}, {"b": 2.5, "c": "x"}, {}, {"a": None}] * 10,
        "records with escaped keys": [{'say "hi"': 1, "a\\b": 2, "\n": 3, "é": 4}] * 3,
        "records with an int key": [{"a": 1}, {1: "x"}],
        "records with colliding keys": [{"1": "a", 1: "b"}, {"x": 1}],
        "records with a str subclass key": [{Shout("k"): 1}, {"k": 2}],
        "records with NaN": [{"a": 1.0}, {"a": nan}],
        "records with an unsafe int": [{"a": 1}, {"a": 1 << 53}],
        "records with a nested value": [{"a": [1]}, {"a": 2}],
        "records of a dict subclass": [collections.OrderedDict(a=1), {"a": 2}],
        "records and rows": [{"a": 1}, [1, 2]],
        "empty records": [{}, {}, {}],
        "long records": [{"k%d" % i: i for i in range(70)}, {"a": 1}],
        "many records": [{"i": i, "f": i / 7} for i in range(10000)],
        "objects": [object, 1, len],
        "string": "x" * 5000,
        "short string": "hello",
        "empty string": "",
        "string to escape": 'a"b\\c\nd' * 700,
        "string with quotes": 'say "hi" ' * 700,
        "string with backslashes": "c:\\dir\\" * 700,
        "printable non-ASCII string": "ñandú 日本 " * 700,
        "non-ASCII string": "é日本\U0001F600" * 2000,
        "lone surrogate string": "a\ud800b" * 2000,
        "control characters": "\x00\x01\x1f" * 2000,
        "DEL": "x" * 4095 + "\x7f",
        "str subclass alone": Shout("loud"),
        "int": 42,
        "float NaN": nan,
        "None": None,
    }
    cyclic = [1, 2]
    cyclic.append(cyclic)
    cases["cycle"] = cyclic
    deep = [1, 2]
    for _ in range(100):
        deep = [deep, 3, 4]
    cases["deep"] = deep
    # Rows at each depth around MAX_DEPTH, where the walk gives their repr instead.
    for levels in (MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH):
        nested = [(1, 2.5, "r"), [3, None]]
        for _ in range(levels):
            nested = [nested]
        cases["rows %d deep" % levels] = nested
        nested = [{"a": 1, "b": "x"}, {"c": None}]
        for _ in range(levels):
            nested = [nested]
        cases["records %d deep" % levels] = nested
    return cases


def numpy_cases(numpy):
    return {
        "int64 array": numpy.arange(-5, 100, dtype="int64"),
        "uint64 beyond 2**53": numpy.array([2 ** 63, 1, 2], dtype="uint64"),
        "float64 with NaN": numpy.array([1.5, numpy.nan, numpy.inf, -numpy.inf, -0.0, 1e-300]),
        "float32": numpy.array([0.1, 0.2, 1 / 3], dtype="float32"),
        "bool array": numpy.array([True, False, True]),
        "str array": numpy.array(["a", "bé", ""]),
        "2-D array": numpy.arange(12).reshape(3, 4) / 3,
        "datetime64 array": numpy.array(["2020-01-01", "NaT"], dtype="datetime64[s]"),
        "object array": numpy.array([1, "a", None, 2.5], dtype=object),
        "int64 scalar": numpy.int64(7),
        "float64 NaN scalar": numpy.float64("nan"),
        "list of numpy scalars": [numpy.int64(1), numpy.float64(2.5), numpy.bool_(True)],
        "list of numpy floats": [numpy.float64(i / 3) for i in range(10)],
    }


def pandas_cases(numpy, pandas):
    rows = 40
    floats = numpy.arange(rows) / 3.0
    floats[::7] = numpy.nan
    times = pandas.Series(pandas.date_range("2020-01-01", periods=rows, freq="h"))
    times[3] = pandas.NaT
    frame = pandas.DataFrame({
        "i": numpy.arange(rows),
        "f": floats,
        "s": ["name %d" % i for i in range(rows)],
        "b": numpy.arange(rows) % 2 == 0,
        "t": times,
        "t_full": pandas.date_range("2020-01-01", periods=rows, freq="min"),
        "tz": pandas.date_range("2020-01-01", periods=rows, freq="D", tz="Europe/Paris"),
        "td": pandas.to_timedelta(numpy.arange(rows), unit="s"),
        "Int64": pandas.array([None if i % 5 == 0 else i for i in range(rows)], dtype="Int64"),
        "Float64": pandas.array([None if i % 4 == 0 else i / 2 for i in range(rows)], dtype="Float64"),
        "string": pandas.array([None if i % 3 == 0 else "s%d" % i for i in range(rows)], dtype="string"),
        "boolean": pandas.array([None if i % 6 == 0 else i % 2 == 0 for i in range(rows)], dtype="boolean"),
        "mixed": pandas.Series([[1, "a", None, 2.5, True][i % 5] for i in range(rows)], dtype=object),
        "strs and None": pandas.Series([None if i % 2 else "x%d" % i for i in range(rows)], dtype=object),
        "all None": pandas.Series([None] * rows, dtype=object),
        "category": pandas.Categorical(["a", "b", None, "a"] * (rows // 4)),
        "big ints": numpy.array([2 ** 62 if i % 3 == 0 else i for i in range(rows)], dtype="int64"),
        "all NaN": numpy.full(rows, numpy.nan),
        "lists": pandas.Series([[i, i + 1] for i in range(rows)], dtype=object),
    })
    return {
        "DataFrame": frame,
        "DataFrame, one row": frame.iloc[:1],
        "DataFrame, no rows": frame.iloc[:0],
        "empty DataFrame": pandas.DataFrame(),
        "non-str column names": pandas.DataFrame({1: [1, 2], (2, 3): ["a", "b"], None: [0.5, 1.5]}),
        "duplicate column names": pandas.DataFrame([[1, 2.5], [3, numpy.nan]], columns=["a", "a"]),
        "all-NaT column": pandas.DataFrame({"t": pandas.Series([pandas.NaT] * 5, dtype="datetime64[ns]")}),
        "pd.NA": pandas.NA,
        "NaT": pandas.NaT,
        "list with NA": [1, pandas.NA, 2],
        "Series": pandas.Series([1, 2, 3]),
    }


def check_interrupt_between_chunks():
    """An interrupt while a big array is encoded ends the packing at the next chunk (the
    C encoder holds a signal back until it returns), and nothing is sent half done."""
    global _encode_floats
    import signal as signals
    encode_floats = _encode_floats
    chunks = []

    def counting(chunk):
        chunks.append(len(chunk))
        return encode_floats(chunk)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    values = [i / 7 for i in range(1 << 21)]  # 32 chunks, each some ms of work
    previous = signals.signal(signals.SIGALRM, interrupt)
    _encode_floats = counting
    try:
        signals.setitimer(signals.ITIMER_REAL, 0.01)
        try:
            pack(values)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("the interrupt did not end the packing")
    finally:
        signals.setitimer(signals.ITIMER_REAL, 0)
        signals.signal(signals.SIGALRM, previous)
        _encode_floats = encode_floats
    total = len(values) // FAST_CHUNK
    assert len(chunks) < total, "%d of %d chunks were encoded before the interrupt" % (len(chunks), total)


def stingy_writev(fd, views):
    """writev as a signal can leave it: some of the bytes written, at most 777."""
    return os.write(fd, b"".join(bytes(view) for view in views)[:777])


def check_write_buffers(writev):
    """A reply line written as many buffers (more than one writev takes, larger than a
    pipe holds, some empty, some views) arrives whole, in order, with its newline,
    also where writev writes only part of them."""
    global PROTO_OUT, _writev
    read_end, write_end = os.pipe()
    buffers = []
    for index in range(1500):
        buffers += [b"", ("%d:" % index).encode() * (index % 50), memoryview(b"[abc]")[1:-1]]
    buffers.append(b"z" * 300000)
    received = []

    def read():
        while True:
            data = os.read(read_end, 1 << 16)
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    saved = PROTO_OUT, _writev
    PROTO_OUT, _writev = write_end, writev
    try:
        write_buffers(buffers)
    finally:
        PROTO_OUT, _writev = saved
        os.close(write_end)
        reader.join()
        os.close(read_end)
    assert b"".join(received) == b"".join(bytes(buffer) for buffer in buffers) + b"\n", "write_buffers lost or reordered bytes"


def main():
    for name, value in plain_cases().items():
        check(name, value)
    try:
        import numpy
    except ImportError:
        print("numpy is not installed; skipping the numpy and pandas cases")
        numpy = None
    if numpy is not None:
        for name, value in numpy_cases(numpy).items():
            check(name, value)
        try:
            import pandas
        except ImportError:
            print("pandas is not installed; skipping the pandas cases")
            pandas = None
        if pandas is not None:
            for name, value in pandas_cases(numpy, pandas).items():
                check(name, value)
    # A fast reply holds Fragments: check that one was made where it should be.
    global FAST_MIN
    FAST_MIN = 0
    assert type(pack([1, 2, 3])["data"]) is Fragment
    assert type(pack([1, True])["data"]) is list
    FAST_MIN = 32
    check_interrupt_between_chunks()
    check_write_buffers(_writev)
    check_write_buffers(stingy_writev)
    print("ok %d" % CHECKED[0])


main()
