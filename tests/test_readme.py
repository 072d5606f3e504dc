"""The README's "grow your own network" example runs as printed (the block after its marker)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- tests/test_readme.py runs this block -->"


@pytest.mark.parametrize("variant", [0, 1, 2], ids=["wrap", "cnn", "vit"])
def test_readme_growth_example_runs(variant, tmp_path):
    """The block as printed, and with each commented ``# net = ...`` alternative in place of the first:
    every strategy (topological derivative, SensLI, random insertion, Net2DeeperNet) grows the network,
    and the saved network loads with the same outputs (the block asserts it)."""
    text = (REPO / "README.md").read_text()
    code = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S).group(1)
    choices = re.findall(r"^( *)((?:# )?net = .*)$", code, re.M)
    assert len(choices) == 3
    indent, first = choices[0]
    code = code.replace(indent + first, indent + choices[variant][1].removeprefix("# "), 1)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    grown = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert sorted(grown) == ["net2deeper", "random", "sensitivity", "topological"]
    assert all(locations.startswith("[") and locations != "[]" for locations in grown.values()), grown
