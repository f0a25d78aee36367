"""README's Python examples run as written and print what README says they print, and its test command is the one
CI runs."""

import contextlib
import io
import re
from pathlib import Path

import gymnasium as gym
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def printed(block: str) -> list[str]:
    """What each `print(...)` line of a block shows in README: its trailing `# ...` comment, or else the comment line
    right below it. `...` stands for any text."""
    lines = block.splitlines()
    expected = []
    for index, line in enumerate(lines):
        if not line.lstrip().startswith("print("):
            continue
        _, hash_, comment = line.partition("  # ")
        below = lines[index + 1].strip() if index + 1 < len(lines) else ""
        assert hash_ or below.startswith("# "), f"README shows no output for {line.strip()!r}"
        expected.append(comment if hash_ else below.removeprefix("# "))
    return expected


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_example_runs_and_prints_what_readme_shows(index: int) -> None:
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)
    shown = out.getvalue().splitlines()
    expected = printed(BLOCKS[index])
    assert len(shown) == len(expected), shown
    for line, want in zip(shown, expected, strict=True):
        assert re.fullmatch(".*".join(map(re.escape, want.split("..."))), line), (line, want)


def test_the_examples_show_their_values() -> None:
    """The examples whose results the README quotes print them (a quoted value no test compares is a claim)."""
    shown = [value for block in BLOCKS for value in printed(block)]
    assert {"[4. 4. 4. 4.]", "4.0 True", "4.0", "256 ['format', 'correctness']"} <= set(shown)
    assert "(149,) ['gold', 'extra_call', 'no_call', 'wrong_name']" in shown


def test_suite_example_registers_a_working_env() -> None:
    block = next(b for b in BLOCKS if "register_suite" in b)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md suite block", "exec"), namespace)
    assert len(block.strip().splitlines()) < 30
    env = gym.make(namespace["env_id"])
    env.reset(options={"task_id": "w1"})
    call = '{"name": "word_count", "parameters": {"text": "to be or not"}}'
    _, reward, _, _, info = env.step(f"<think> count </think>\n<tool_call>\n{call}\n</tool_call>")
    assert info["tool_results"] == [{"name": "word_count", "ok": True, "content": 4}]
    assert reward == 4.0


def test_ci_runs_the_readme_test_command() -> None:
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in README
