"""API-Bank executors: the calculator, the fixed clock, tokens, the token-guarded stores, seeding from a task,
schema mocks for the APIs without an executor, and snapshots."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from toolrl_env.envs.api_bank.apis import DEFAULT_TODAY, ApiBankSuite, issue_token, runs, seed_state
from tools.call import ToolCall
from tools.tool import Tool

TOKEN = "o8i7u6y5t4r3e2w1q0"
HISTORY = (
    "<user>Check my alarm.</user>\n<tool_call>\n"
    '{"name": "GetUserToken", "parameters": {"username": "JaneSmith", "password": "password"}}\n'
    f"</tool_call>\n<obs> {{'token': '{TOKEN}'}} </obs>\n<response>Done.</response>"
)


def _schema(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "string", "description": n} for n in names}}


TOOLS = [
    Tool(name="Calculator", parameters=_schema("formula")),
    Tool(name="GetToday", parameters=_schema()),
    Tool(name="GetUserToken", parameters=_schema("username", "password")),
    *(Tool(name=f"{verb}Alarm", parameters=_schema("token", "time")) for verb in ("Add", "Delete", "Query")),
    Tool(name="ModifyAlarm", parameters=_schema("token", "from_time", "to_time")),
    *(
        Tool(name=f"{verb}Reminder", parameters=_schema("token", "content", "time"))
        for verb in ("Add", "Delete", "Modify", "Query")
    ),
    Tool(name="QueryMeeting", parameters=_schema("user_name")),  # level 3's API of that name: no executor
]


def suite(history: str = HISTORY, gold: dict[str, Any] | None = None) -> ApiBankSuite:
    s = ApiBankSuite()
    state = seed_state(history, gold or {"name": "Calculator", "parameters": {}})
    s.reset(seed=0, options={"tools": [t.model_dump() for t in TOOLS], "state": state})
    return s


def run(s: ApiBankSuite, name: str, **parameters: Any) -> tuple[bool, Any]:
    result = s.call(ToolCall(name=name, parameters=parameters))
    return result.ok, result.content


def test_calculator_evaluates_without_running_code() -> None:
    s = suite()
    assert run(s, "Calculator", formula="(5+6)*3") == (True, 33)
    assert run(s, "Calculator", formula="(4*2)/(1+3)") == (True, 2.0)
    for bad in ("__import__('os').system('true')", "1 +", "9**9**9**9"):
        ok, content = run(s, "Calculator", formula=bad)
        assert not ok and "error" in content


def test_get_today_is_a_fixed_clock_unless_the_history_shows_one() -> None:
    assert run(suite(), "GetToday") == (True, DEFAULT_TODAY)
    history = '<tool_call>\n{"name": "GetToday", "parameters": {}}\n</tool_call>\n<obs> 2022-01-02 </obs>'
    assert run(suite(history), "GetToday") == (True, "2022-01-02")


def test_get_user_token_knows_the_history_accounts_and_registers_new_users() -> None:
    s = suite()
    assert run(s, "GetUserToken", username="JaneSmith", password="password") == (True, {"token": TOKEN})
    ok, content = run(s, "GetUserToken", username="JaneSmith", password="wrong")
    assert not ok and "wrong password" in content["error"]
    ok, content = run(s, "GetUserToken", username="bob", password="pw")
    assert ok and content == {"token": issue_token("bob", "pw")}
    assert run(s, "GetUserToken", username="bob", password="pw") == (True, content)


def test_alarm_store_adds_queries_modifies_and_deletes() -> None:
    s = suite()
    assert run(s, "AddAlarm", token=TOKEN, time="2023-03-20 06:30:00") == (True, "success")
    ok, content = run(s, "AddAlarm", token=TOKEN, time="2023-03-20 06:30:00")
    assert not ok and "already exists" in content["error"]
    assert run(s, "QueryAlarm", token=TOKEN, time="2023-03-20 06:30:00") == (True, [{"time": "2023-03-20 06:30:00"}])
    assert run(s, "ModifyAlarm", token=TOKEN, from_time="2023-03-20 06:30:00", to_time="2023-03-20 07:00:00") == (
        True,
        "success",
    )
    assert run(s, "QueryAlarm", token=TOKEN) == (True, [{"time": "2023-03-20 07:00:00"}])
    assert run(s, "DeleteAlarm", token=TOKEN, time="2023-03-20 07:00:00") == (True, "success")
    ok, content = run(s, "DeleteAlarm", token=TOKEN, time="2023-03-20 07:00:00")
    assert not ok and "no alarm with time='2023-03-20 07:00:00'" in content["error"]
    assert run(s, "QueryAlarm", token=TOKEN) == (True, [])


def test_stores_refuse_bad_tokens_times_and_parameters() -> None:
    s = suite()
    ok, content = run(s, "AddAlarm", token="forged", time="2023-03-20 06:30:00")
    assert not ok and "invalid token 'forged'" in content["error"]
    ok, content = run(s, "AddAlarm", token=TOKEN, time="tomorrow 9am")
    assert not ok and "not in the format" in content["error"]
    ok, content = run(s, "AddAlarm", token=TOKEN, time="2023-03-20 06:30:00", volume="loud")
    assert not ok and "unknown parameter(s) ['volume']" in content["error"]
    ok, content = run(s, "AddReminder", token=TOKEN, time="2023-03-20 06:30:00")
    assert not ok and "missing parameter(s) ['content']" in content["error"]


def test_records_belong_to_the_token_owner() -> None:
    s = suite()
    assert run(s, "AddReminder", token=TOKEN, content="Call mom", time="2023-03-16 14:30:00")[0]
    other = run(s, "GetUserToken", username="bob", password="pw")[1]["token"]
    assert run(s, "QueryReminder", token=other) == (True, [])
    assert not run(s, "DeleteReminder", token=other, content="Call mom")[0]
    assert run(s, "ModifyReminder", token=TOKEN, content="Call mom", time="2023-03-17 09:00:00") == (True, "success")
    assert run(s, "QueryReminder", token=TOKEN, content="Call mom") == (
        True,
        [{"content": "Call mom", "time": "2023-03-17 09:00:00"}],
    )


def test_the_record_a_gold_call_refers_to_is_seeded() -> None:
    gold = {
        "name": "DeleteReminder",
        "parameters": {"token": "q9w8e7r6t5y4u3i2o1", "content": "Call dentist", "time": "2023-03-16 16:30:00"},
    }
    s = suite(gold=gold)
    assert not run(s, "DeleteReminder", token="q9w8e7r6t5y4u3i2o1", content="Call the dentist")[0]
    assert run(s, "DeleteReminder", **gold["parameters"]) == (True, "success")
    assert run(s, "QueryReminder", token="q9w8e7r6t5y4u3i2o1") == (True, [])


def test_apis_without_an_executor_answer_with_the_schema_mock() -> None:
    s = suite()
    assert not runs(s.tool("QueryMeeting"))  # level 3's QueryMeeting(user_name) differs from the token API
    assert runs(s.tool("QueryAlarm"))
    ok, content = run(s, "QueryMeeting", user_name="John")
    assert ok and content["tool"] == "QueryMeeting" and content["echo"] == {"user_name": "John"}
    ok, content = run(s, "NoSuchApi")
    assert not ok and "unknown tool" in content["error"]


def test_snapshots_restore_records_and_tools_and_survive_pickling() -> None:
    s = suite()
    run(s, "AddAlarm", token=TOKEN, time="2023-03-20 06:30:00")
    snapshot = s.get_state()
    run(s, "DeleteAlarm", token=TOKEN, time="2023-03-20 06:30:00")
    s.reset(seed=1, options={"tools": [TOOLS[0].model_dump()], "state": seed_state("", {})})
    s.set_state(snapshot)
    assert run(s, "QueryAlarm", token=TOKEN) == (True, [{"time": "2023-03-20 06:30:00"}])
    for clone in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert run(clone, "DeleteAlarm", token=TOKEN, time="2023-03-20 06:30:00") == (True, "success")
        assert run(clone, "QueryAlarm", token=TOKEN) == (True, [])
    assert run(s, "QueryAlarm", token=TOKEN) == (True, [{"time": "2023-03-20 06:30:00"}])


@pytest.mark.parametrize("history", ["<obs> {'token': 1 </obs>", "<tool_call>\nnot json\n</tool_call>\n<obs> x </obs>"])
def test_seeding_skips_unreadable_history_records(history: str) -> None:
    state = seed_state(history, {"name": "GetToday", "parameters": {}})
    assert state["accounts"] == {} and state["today"] == DEFAULT_TODAY
