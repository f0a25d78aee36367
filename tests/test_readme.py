"""README's Python examples run as written, and its test command is the one CI runs."""

import re
from pathlib import Path

import gymnasium as gym
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_example_runs(index: int) -> None:
    namespace: dict[str, object] = {}
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), namespace)


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
