# worker/pointers.py: Pointers and fetch for tables over the inline limit (PROTOCOL.md section 9).
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
# ---------------------------------------------------------------------------
# Pointers (PROTOCOL.md section 9): a table (a pandas DataFrame) over the inline limit
# stays in the worker, under the variable that holds it or a hidden holder, and is
# answered with a pointer; `fetch` pages through it. The host adds the pointer's
# `instance` and resolves pointers passed as inputs (the data never reaches the client).


def inline_limit(index, default):
    try:
        return int(sys.argv[index])
    except (IndexError, ValueError):
        return default


# Passed by the host after the longest reply (--max-inline).
MAX_INLINE_ROWS = inline_limit(4, 10000)
MAX_INLINE_BYTES = inline_limit(5, 8 << 20)
PREVIEW_ROWS = 20
FETCH_LIMIT = 1000
# Hidden holders kept (values no variable names); older ones are dropped.
HOLDERS_KEPT = 10
HOLDERS = {}
HOLDER_COUNT = [0]


def is_frame(value):
    return module_of(value).startswith("pandas") and type_name(value) == "DataFrame"


def pack_or_pointer(value, name=None):
    """`pack`, except that a table over the inline limit is kept and becomes a pointer."""
    if not is_frame(value):
        return pack(value)
    try:
        rows = int(value.shape[0])
    except Exception:
        return pack(value)  # a DataFrame look-alike: packed as `pack` sees it
    if rows <= MAX_INLINE_ROWS:
        try:
            packed = pack(value)
        except TooBig:
            packed = None
        if packed is not None and json_size(packed) <= MAX_INLINE_BYTES:
            return packed
    if name is None:
        name = variable_holding(value)
    if name is None:
        name = hold(value)
    preview = pack(value.iloc[:PREVIEW_ROWS])
    return {"type": "pointer", "name": name, "valueType": "table", "rows": rows, "preview": preview}


def variable_holding(value):
    for key, item in list(NAMESPACE.items()):
        if item is value and not key.startswith("_"):
            return key
    return None


def hold(value):
    HOLDER_COUNT[0] += 1
    name = "_stencila_value%d" % HOLDER_COUNT[0]
    HOLDERS[name] = value
    while len(HOLDERS) > HOLDERS_KEPT:
        del HOLDERS[next(iter(HOLDERS))]
    return name


def do_fetch(args):
    name = args.get("name")
    if not isinstance(name, str):
        raise ArgumentError("fetch needs `name`, a string")
    offset = args.get("offset", 0)
    limit = args.get("limit", FETCH_LIMIT)
    for number in (offset, limit):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ArgumentError("fetch: `offset` and `limit` must be whole numbers, 0 or more")
    if name in HOLDERS:
        value = HOLDERS[name]
    elif name in NAMESPACE:
        value = NAMESPACE[name]
    else:
        raise ArgumentError(
            "no value named '%s' (values no variable holds are kept for the %d most recent pointers)"
            % (name, HOLDERS_KEPT)
        )
    if not is_frame(value):
        raise ArgumentError("'%s' is not a table (a pandas DataFrame) but %s" % (name, type_name(value)))
    try:
        return pack(value.iloc[offset:offset + limit])
    except TooBig:
        raise ArgumentError("a page of %d rows of '%s' is too large to send; ask for fewer" % (limit, name)) from None


# End of the pointers section.
