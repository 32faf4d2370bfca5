# worker/run.py: Running code: the namespace, compiling, error messages, and the execute/list/get/set methods.
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
# ---------------------------------------------------------------------------
# Running code


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins, "sys": sys}


NAMESPACE = fresh_namespace()
CODE_CACHE = {}
CODE_CACHE_USED = 0  # characters of source held by CODE_CACHE (bytes for ASCII code)


def compile_code(code):
    """(body, last): the code compiled, with a final expression split off to be evaluated."""
    global CODE_CACHE_USED
    hit = CODE_CACHE.get(code)
    if hit is not None:
        return hit
    tree = ast.parse(code, USER_FILE, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), USER_FILE, "eval", dont_inherit=True)
    body = compile(tree, USER_FILE, "exec", dont_inherit=True) if tree.body else None
    size = len(code)
    if size > CODE_CACHE_ITEM:
        return body, last
    if len(CODE_CACHE) >= CODE_CACHE_SIZE or CODE_CACHE_USED + size > CODE_CACHE_BYTES:
        CODE_CACHE.clear()
        CODE_CACHE_USED = 0
    CODE_CACHE[code] = (body, last)
    CODE_CACHE_USED += size
    return body, last


def describe(error):
    name = type_name(error)
    try:
        text = str(error)
    except Exception:
        text = ""
    if not isinstance(text, str):
        text = ""
    return clip("%s: %s" % (name, text) if text else name, MESSAGE_CAP)


def column_of(tb):
    """The column of the instruction a traceback entry stopped at, where Python knows it."""
    try:
        lasti = tb.tb_lasti
        if lasti < 0:
            return None
        positions = tb.tb_frame.f_code.co_positions()
    except AttributeError:
        return None
    for index, position in enumerate(positions):
        if index == lasti // 2:
            line, _, column, _ = position
            return column if line == tb.tb_lineno else None
    return None


def error_message(error):
    message = {"type": "error", "message": describe(error)}
    tb = error.__traceback__
    last = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == USER_FILE:
            last = tb
        tb = tb.tb_next
    if last is not None and last.tb_lineno is not None:
        message["line"] = last.tb_lineno
        column = column_of(last)
        if column is not None:
            message["column"] = column
    return message


def syntax_message(error):
    message = {"type": "error", "message": clip("%s: %s" % (type_name(error), error.msg), MESSAGE_CAP)}
    if isinstance(error.lineno, int):
        message["line"] = error.lineno
        if isinstance(error.offset, int) and error.offset > 0:
            message["column"] = error.offset - 1
    return message


def run_user(body, last):
    try:
        if body is not None:
            exec(body, NAMESPACE)
        value = eval(last, NAMESPACE) if last is not None else None
    except BaseException as error:
        message = error_message(error)
        error.__traceback__ = None
        return message, None
    return None, value


def check_name(name, what):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ArgumentError("%s needs `name`, a Python identifier" % what)
    if name.startswith("__") and name.endswith("__"):
        # `__builtins__` and its kind belong to Python: replacing one breaks the namespace.
        raise ArgumentError("%s: '%s' is a name Python reserves (a dunder name)" % (what, name))


def do_execute(args):
    global executing, LIVE_ID
    code = args.get("code")
    if not isinstance(code, str):
        raise ArgumentError("execute needs `code`, a string")
    inputs = args.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, dict):
            raise ArgumentError("`inputs` must be an object of names to packed values")
        for name in inputs:
            check_name(name, "each input")
    packed = None
    failure = None
    value = None
    # From here what is printed goes to the host as it comes (see LIVE).
    LIVE_ID = REQUEST_ID
    if LIVE:
        LIVE_WAKE.set()
    try:
        # From here an interrupt (or a timeout) anywhere is this call's error message.
        if inputs:
            values = {}
            for name, packed_input in inputs.items():
                values[name] = unpack(packed_input, "input '%s'" % name)
            NAMESPACE.update(values)
        prepare_streams()
        try:
            body, last = compile_code(code)
        except SyntaxError as error:
            failure = syntax_message(error)
        except Exception as error:
            failure = {"type": "error", "message": describe(error)}
        else:
            failure, value = run_user(body, last)
        if value is not None:
            try:
                packed = pack_or_pointer(value)
            except TooBig:
                packed = None
                failure = {"type": "error", "message": too_big_text(value)}
    except KeyboardInterrupt:
        packed = None
        failure = {"type": "error", "message": "KeyboardInterrupt: the call was interrupted"}
        if value is not None:
            failure["message"] = INTERRUPTED_PACKING
    finally:
        # Our own bookkeeping, bounded in time: an interrupt now must not cut it short
        # and leave this call's output for the next one.
        executing = False
    collect_fd_output()
    messages = OUTPUT.messages()
    if failure is not None:
        messages.append(failure)
    return {"messages": messages, "value": packed}


def do_list(args):
    return [
        {"name": name, "type": packed_type(value)}
        for name, value in list(NAMESPACE.items())
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]


def do_get(args):
    name = args.get("name")
    if not isinstance(name, str):
        raise ArgumentError("get needs `name`, a string")
    if name not in NAMESPACE:
        raise ArgumentError("no variable named '%s'" % name)
    if is_frame(NAMESPACE[name]):
        return pack_or_pointer(NAMESPACE[name], name)
    return pack_or_error(NAMESPACE[name])


def do_set(args):
    name = args.get("name")
    check_name(name, "set")
    if "value" not in args:
        raise ArgumentError("set needs `value`, a packed value")
    NAMESPACE[name] = unpack(args["value"], "`value`")
    return None

