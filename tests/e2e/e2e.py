#!/usr/bin/env python3
"""Small helpers of the e2e shell scripts, in one place instead of inline `python3 -c`.

  e2e.py le A B               exit 0 when A <= B (numbers)
  e2e.py calc FMT EXPR        print EXPR (arithmetic on numbers; max, min, int, abs)
                              formatted with FMT, e.g. calc .3f '12.5 - 3'
  e2e.py json PATH            the field at PATH (dotted keys, list indices) of the
                              JSON document on stdin, e.g. json self.underlay_port
  e2e.py jexpr JSON EXPR      EXPR, a Python expression over the object j parsed from
                              JSON (capture.py's reports: sums, joins, lookups)
  e2e.py since T              seconds from Unix time T to now, .3f
  e2e.py b64 HEX              base64 of the bytes HEX spells (WireGuard key form)
  e2e.py candidates           from `tailwarden status --json` on stdin: every peer
                              candidate and best endpoint, one per line
  e2e.py endpoints            from `tailwarden status --json` on stdin: our endpoints
"""
import ast
import base64
import json
import operator
import sys
import time

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CALLS = {"max": max, "min": min, "int": int, "abs": abs, "float": float}


def _eval(node):
    """Arithmetic only: numbers, + - * / // %, unary minus, and the calls in _CALLS."""
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_eval(node.left), _eval(node.right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _CALLS and not node.keywords):
        return _CALLS[node.func.id](*[_eval(a) for a in node.args])
    raise SystemExit(f"e2e.py calc: not arithmetic: {ast.dump(node)}")


def calc(fmt, expr):
    return format(_eval(ast.parse(expr, mode="eval")), fmt)


def json_path(doc, path):
    v = doc
    for part in path.split("."):
        v = v[int(part)] if isinstance(v, list) else v[part]
    return v


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "le":
        return 0 if float(args[0]) <= float(args[1]) else 1
    if cmd == "calc":
        print(calc(args[0], args[1]))
    elif cmd == "json":
        v = json_path(json.load(sys.stdin), args[0])
        print(json.dumps(v) if isinstance(v, (dict, list)) else v)
    elif cmd == "jexpr":
        print(eval(args[1], {"__builtins__": {"sum": sum, "len": len, "max": max, "min": min}},
                   {"j": json.loads(args[0])}))
    elif cmd == "since":
        print(f"{time.time() - float(args[0]):.3f}")
    elif cmd == "b64":
        print(base64.b64encode(bytes.fromhex(args[0])).decode())
    elif cmd == "candidates":
        for p in json.load(sys.stdin)["peers"]:
            for c in p.get("candidates", []):
                print(c["addr"])
            print(p.get("endpoint", ""))
    elif cmd == "endpoints":
        for e in json.load(sys.stdin)["self"].get("endpoints", []):
            print(e)
    else:
        raise SystemExit(f"e2e.py: unknown command {cmd}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
