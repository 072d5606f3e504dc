"""The README's "grow your own network" example runs as printed (the block after its marker)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- tests/test_readme.py runs this block -->"


@pytest.mark.parametrize("variant", [0, 1, 2], ids=["wrap", "cnn", "vit"])
def test_readme_growth_example_runs(variant):
    """The block as printed, and with each commented ``# net = ...`` alternative in place of the first."""
    text = (REPO / "README.md").read_text()
    code = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S).group(1)
    choices = re.findall(r"^#? ?net = .*$", code, re.M)
    assert len(choices) == 3
    code = code.replace(choices[0], choices[variant].lstrip("# "), 1)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    blocks, locations = done.stdout.split(" ", 1)
    assert int(blocks) >= 1 and "[" in locations
