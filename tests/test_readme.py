"""The README and the docs say what the software does: the CLI reference is the real ``--help``, the
commands shown exist, and the README's numbers are the docs' current results."""

import re
import runpy

from conftest import ROOT

from specnir.cli.parser import help_reference

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_the_cli_reference_is_the_help_of_every_command():
    reference = runpy.run_path(str(DOCS / "cli_reference.py"))  # (its HEAD, not run as a script)
    assert (DOCS / "cli.md").read_text() == reference["HEAD"] + help_reference(), (
        "stale docs/cli.md: run python docs/cli_reference.py"
    )


def test_every_command_shown_exists():
    shown = "\n".join(re.findall(r"```sh\n(.*?)```", README + (DOCS / "corpus.md").read_text(), re.S))
    used = set(re.findall(r"^specnir ([\w-]+)", shown, re.M))
    commands = set(re.findall(r"^#### `specnir ([\w-]+)`", (DOCS / "cli.md").read_text(), re.M))
    assert used and used <= commands


def test_the_readme_is_short_and_its_numbers_are_the_docs():
    assert len(README.splitlines()) <= 300
    headline = README[README.index("## Headline numbers") : README.index("## What is in the documentation")]
    results = (DOCS / "results.md").read_text() + (DOCS / "corpus.md").read_text()
    numbers = set(re.findall(r"\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+", headline))
    assert len(numbers) > 20
    missing = [n for n in numbers if not re.search(rf"(?<![\d.,]){re.escape(n)}(?!\d|[.,]\d)", results)]
    assert not sorted(missing), "README numbers missing from docs/"
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)", README)
    assert links and all((ROOT / link).exists() for link in links)
