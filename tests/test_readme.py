"""The README tells the truth: its Python snippets run as written, and its public API list is
exactly ``pontem_async.__all__``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pontem_async

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_runs_as_written(index: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTEM_")}
    result = subprocess.run(
        [sys.executable, "-c", SNIPPETS[index]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"snippet {index} failed:\n{SNIPPETS[index]}\n{result.stderr}"


def test_public_api_section_lists_exactly_all() -> None:
    section = README.split("## Public API", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`pa\.([A-Za-z_]+)`", section))
    assert documented == set(pontem_async.__all__) - {"__version__"}
    assert list(pontem_async.__all__) == sorted(pontem_async.__all__)
