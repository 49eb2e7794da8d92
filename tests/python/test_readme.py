"""The README's Python examples run as written, in order, in one fresh
interpreter, and print what their comments say."""

import json
import os
import subprocess
import sys

from tools import REPO

RUNNER = r"""
import ast, contextlib, io, json, re, sys

blocks = json.loads(sys.argv[1])
namespace = {"__name__": "__main__"}
failures = []

def normal(text):
    return " ".join(text.split())

for block in blocks:
    lines = block.splitlines()
    tree = ast.parse(block)
    for stmt in tree.body:
        # Full-line comments right after a statement are its expected output.
        expected = []
        for line in lines[stmt.end_lineno:]:
            if not line.startswith("#"):
                break
            expected.append(line[1:].strip())
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), "<README>", "eval"), namespace)
                if value is not None:
                    print(repr(value))
            else:
                exec(compile(ast.Module([stmt], []), "<README>", "exec"), namespace)
        if expected and normal(out.getvalue()) != normal(" ".join(expected)):
            failures.append({"code": ast.get_source_segment(block, stmt), "expected": " ".join(expected),
                             "printed": out.getvalue()})
print(json.dumps(failures))
"""


def python_blocks(text):
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_readme_python_examples_run_as_written(tmp_path):
    with open(os.path.join(REPO, "README.md")) as f:
        blocks = python_blocks(f.read())
    assert len(blocks) >= 3, "the README's Python examples were not found"
    env = dict(os.environ, PYTRACKER_DIR=str(tmp_path))
    env.pop("PYTRACKER_EXPORT", None)
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(blocks)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    failures = json.loads(r.stdout.splitlines()[-1])
    assert failures == [], json.dumps(failures, indent=2)
