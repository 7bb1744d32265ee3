"""Rewrite the README's CLI reference from ``--help`` (``python docs/cli_reference.py``).

tests/test_readme.py checks that the README still matches.
"""

import re
from pathlib import Path

from specnir.cli.parser import help_reference

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"

text = README.read_text()
pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
if not pattern.search(text):
    raise SystemExit(f"{README}: no {START} … {END} section")
README.write_text(pattern.sub(lambda _: f"{START}\n{help_reference()}{END}", text))
print(f"{README}: CLI reference rewritten")
