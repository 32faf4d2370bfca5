# worker/analysis.py: The 2018 clients' dependency analysis and evaluate (PROTOCOL.md section 13).
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
# ---------------------------------------------------------------------------
# The 2018 clients (PROTOCOL.md section 13): dependency analysis and evaluate.
# Language-neutral translation of their methods lives in the host (legacy.rs);
# these are the two primitives only Python can answer.

ANALYSIS_IGNORED = frozenset(["sys", "__name__", "__builtins__"])


class Scope:
    """Names bound so far in one scope that runs now (module, class body, comprehension)."""

    def __init__(self, kind, parent):
        self.kind = kind  # "module", "class" or "comprehension"
        self.parent = parent
        self.bound = set()
        self.globals = set()  # `global` names of a class body


class Analysis:
    """Walks a module in execution order: what it reads before binding, and binds."""

    def __init__(self):
        import builtins

        self.builtins = frozenset(dir(builtins))
        self.module = Scope("module", None)
        self.inputs = []

    # -- names

    def read(self, name, scope):
        while scope is not None:
            if scope.kind == "class" and name in scope.globals:
                scope = self.module
                continue
            if name in scope.bound:
                return
            parent = scope.parent
            # Only a class body itself sees the class's names: not the comprehensions
            # or classes nested in it.
            while parent is not None and parent.kind == "class":
                parent = parent.parent
            scope = parent
        if name in self.builtins or name in ANALYSIS_IGNORED or name in self.inputs:
            return
        self.inputs.append(name)

    def bind(self, name, scope):
        if scope.kind == "class" and name in scope.globals:
            scope = self.module
        scope.bound.add(name)

    def binding_scope(self, scope):
        """Where a walrus binds: the nearest scope that is not a comprehension."""
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope

    # -- statements

    def body(self, statements, scope):
        for statement in statements:
            self.statement(statement, scope)

    def statement(self, node, scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.exprs(node.decorator_list, scope)
            outer = self.type_params(node, scope)
            self.arguments(node.args, outer)
            self.expr(node.returns, outer)
            self.bind(node.name, scope)
        elif isinstance(node, ast.ClassDef):
            self.exprs(node.decorator_list, scope)
            outer = self.type_params(node, scope)
            self.exprs(node.bases, outer)
            self.exprs([keyword.value for keyword in node.keywords], outer)
            inner = Scope("class", scope)
            self.body(node.body, inner)
            self.bind(node.name, scope)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.bind(alias.asname or alias.name.split(".")[0], scope)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    self.bind(alias.asname or alias.name, scope)
        elif isinstance(node, ast.Global):
            if scope.kind == "class":
                scope.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            pass
        elif isinstance(node, ast.AugAssign):
            # `y += x` reads y, then x, then binds y.
            if isinstance(node.target, ast.Name):
                self.read(node.target.id, scope)
                self.expr(node.value, scope)
                self.bind(node.target.id, scope)
            else:
                self.expr(node.target, scope)
                self.expr(node.value, scope)
        elif isinstance(node, ast.Assign):
            self.expr(node.value, scope)
            for target in node.targets:
                self.target(target, scope)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.value, scope)
            self.expr(node.annotation, scope)
            if node.value is not None:
                self.target(node.target, scope)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter, scope)
            self.target(node.target, scope)
            self.body(node.body, scope)
            self.body(node.orelse, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, scope)
            self.body(node.body, scope)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.body(node.body, scope)
            for handler in node.handlers:
                self.expr(handler.type, scope)
                if handler.name:
                    self.bind(handler.name, scope)
                self.body(handler.body, scope)
            self.body(node.orelse, scope)
            self.body(node.finalbody, scope)
        elif type(node).__name__ == "Match":
            self.expr(node.subject, scope)
            for case in node.cases:
                self.pattern(case.pattern, scope)
                self.expr(case.guard, scope)
                self.body(case.body, scope)
        elif type(node).__name__ == "TypeAlias":
            self.bind(node.name.id, scope)
        else:
            # Expression statements, if/while, return, raise, assert, del, ...:
            # their expressions and nested statements in source order.
            for _, value in ast.iter_fields(node):
                if isinstance(value, list):
                    for item in value:
                        self.node(item, scope)
                else:
                    self.node(value, scope)

    def type_params(self, node, scope):
        """The scope of a generic's annotations (`def f[T](x: T)`): T is bound there."""
        names = [p.name for p in getattr(node, "type_params", None) or []]
        if not names:
            return scope
        inner = Scope("comprehension", scope)
        inner.bound.update(names)
        return inner

    def node(self, value, scope):
        if isinstance(value, ast.stmt):
            self.statement(value, scope)
        elif isinstance(value, ast.expr):
            self.expr(value, scope)

    def target(self, node, scope):
        if isinstance(node, ast.Name):
            self.bind(node.id, scope)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element, scope)
        elif isinstance(node, ast.Starred):
            self.target(node.value, scope)
        else:
            # `a.b = ...`, `a[i] = ...`: reads `a` (and `i`), binds nothing.
            self.expr(node, scope)

    def pattern(self, node, scope):
        for child in ast.walk(node):
            if isinstance(child, ast.expr):
                self.expr(child, scope)
            name = getattr(child, "name", None) or getattr(child, "rest", None)
            if isinstance(name, str):
                self.bind(name, scope)

    # -- expressions

    def exprs(self, nodes, scope):
        for node in nodes:
            self.expr(node, scope)

    def arguments(self, args, scope):
        """Defaults and annotations run when the function is defined; the body does not."""
        self.exprs(args.defaults, scope)
        self.exprs([d for d in args.kw_defaults if d is not None], scope)
        every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
        self.exprs([a.annotation for a in every if a is not None and a.annotation is not None], scope)

    def expr(self, node, scope):
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                self.bind(node.id, scope)
            else:
                self.read(node.id, scope)
        elif isinstance(node, ast.Lambda):
            self.arguments(node.args, scope)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self.comprehension(node, scope)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value, scope)
            self.bind(node.target.id, self.binding_scope(scope))
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, scope)
                elif isinstance(child, ast.comprehension):
                    self.comprehension_clause(child, scope)
                elif isinstance(child, ast.keyword):
                    self.expr(child.value, scope)
                elif isinstance(child, ast.arguments):
                    self.arguments(child, scope)
                else:
                    for grandchild in ast.iter_child_nodes(child):
                        self.node(grandchild, scope)

    def comprehension(self, node, scope):
        generators = node.generators
        # The first iterable is evaluated in the enclosing scope.
        self.expr(generators[0].iter, scope)
        inner = Scope("comprehension", scope)
        for index, generator in enumerate(generators):
            if index:
                self.expr(generator.iter, inner)
            self.target(generator.target, inner)
            self.exprs(generator.ifs, inner)
        if isinstance(node, ast.DictComp):
            self.expr(node.key, inner)
            self.expr(node.value, inner)
        else:
            self.expr(node.elt, inner)

    def comprehension_clause(self, node, scope):
        self.expr(node.iter, scope)
        self.target(node.target, scope)
        self.exprs(node.ifs, scope)


def output_of(statement):
    """The name the last statement binds, or None (for loops, tuple targets, imports)."""
    if isinstance(statement, ast.Assign):
        if len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            return statement.targets[0].id
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        if isinstance(statement.target, ast.Name) and (
            not isinstance(statement, ast.AnnAssign) or statement.value is not None
        ):
            return statement.target.id
    elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return statement.name
    return None


def not_an_expression(tree):
    """The error for `exprOnly` code that is not exactly one expression."""
    message = {"type": "error", "message": "SyntaxError: the code must be a single expression (exprOnly)"}
    statements = [s for s in tree.body if not isinstance(s, ast.Expr)]
    if statements:
        message["line"] = statements[0].lineno
        message["column"] = statements[0].col_offset
    elif len(tree.body) > 1:
        message["line"] = tree.body[1].lineno
        message["column"] = tree.body[1].col_offset
    return message


def do_analyse(args):
    code = args.get("code")
    if not isinstance(code, str):
        raise ArgumentError("analyse needs `code`, a string")
    expr_only = args.get("exprOnly") is True
    result = {"inputs": [], "output": None, "messages": []}
    try:
        tree = ast.parse(code, USER_FILE, "exec")
    except SyntaxError as error:
        result["messages"].append(syntax_message(error))
        return result
    except (RecursionError, MemoryError, ValueError) as error:
        result["messages"].append({"type": "error", "message": describe(error)})
        return result
    if expr_only and (len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr)):
        result["messages"].append(not_an_expression(tree))
        return result
    analysis = Analysis()
    try:
        analysis.body(tree.body, analysis.module)
    except RecursionError:
        result["messages"].append({"type": "error", "message": "RecursionError: the code is nested too deeply to analyse"})
        return result
    result["inputs"] = analysis.inputs
    if tree.body:
        result["output"] = output_of(tree.body[-1])
    return result


def do_evaluate(args):
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise ArgumentError("evaluate needs the function's `name`, a string")
    positional = args.get("args")
    named = args.get("namedArgs")
    if positional is None:
        positional = []
    if named is None:
        named = {}
    if not isinstance(positional, list):
        raise ArgumentError("`args` must be an array of packed values")
    if not isinstance(named, dict):
        raise ArgumentError("`namedArgs` must be an object of names to packed values")
    values = [unpack(packed, "argument %d" % (index + 1)) for index, packed in enumerate(positional)]
    keywords = {}
    for key, packed in named.items():
        check_name(key, "each named argument")
        keywords[key] = unpack(packed, "named argument '%s'" % key)
    prepare_streams()
    import builtins

    function = NAMESPACE.get(name, getattr(builtins, name, None) if name.isidentifier() else None)
    value = None
    if function is None and name not in NAMESPACE:
        failure = {"type": "error", "message": "NameError: name '%s' is not defined" % name}
    elif not callable(function):
        failure = {"type": "error", "message": "TypeError: '%s' is a %s, not a function" % (name, type_name(function))}
    else:
        try:
            value = function(*values, **keywords)
            failure = None
        except BaseException as error:
            failure = error_message(error)
            error.__traceback__ = None
    try:
        packed = None if value is None else pack(value)
    except KeyboardInterrupt:
        packed = None
        failure = {"type": "error", "message": "KeyboardInterrupt: interrupted while converting the value"}
    collect_fd_output()
    messages = OUTPUT.messages()
    if failure is not None:
        messages.append(failure)
    return {"messages": messages, "value": packed}


# End of the 2018 clients' section.
# ---------------------------------------------------------------------------

