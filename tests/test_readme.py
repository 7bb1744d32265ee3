"""The README's CLI reference is the real ``--help`` of every command."""

import re

from conftest import ROOT

from specnir.cli.parser import help_reference


def test_cli_reference_matches_help():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- cli-reference:start -->\n(.*?)<!-- cli-reference:end -->", readme, re.S)
    assert match, "README has no CLI reference section"
    assert match.group(1) == help_reference(), "stale CLI reference: run python docs/cli_reference.py"


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", readme, re.S))
    used = set(re.findall(r"^specnir (\w+)", shell, re.M))
    commands = set(re.findall(r"^#### `specnir (\w+)`", readme, re.M))
    assert used and used <= commands
