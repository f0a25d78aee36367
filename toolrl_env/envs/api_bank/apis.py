"""API-Bank's APIs as tools: our own executors for the ones that can run offline, schema mocks for the rest.

API-Bank (DAMO-ConvAI, Apache-2.0) backs its APIs with JSON databases; ToolRL's processed copy executes
nothing. The executors here are written from the schemas in ToolRL's prompts. Real (they run, with state
held per episode in `ApiBankSuite.state`):

- `Calculator(formula)`: arithmetic through `tools.calculator.evaluate` (parsed, never executed).
- `GetToday()`: a fixed clock, 2023-03-31 (the date API-Bank's own GetToday observations show) unless the
  task's history shows another.
- `GetUserToken(username, password)`: accounts seen in the task's history keep their token; a wrong password
  is refused; a new username is registered and gets a stable token.
- Token-guarded stores, one record list each, owned by the token's user:
  `AddAlarm` / `DeleteAlarm` / `ModifyAlarm` / `QueryAlarm` (time),
  `AddReminder` / `DeleteReminder` / `ModifyReminder` / `QueryReminder` (content, time),
  `AddAgenda` / `DeleteAgenda` / `ModifyAgenda` / `QueryAgenda` (content, time, location),
  `AddMeeting` / `DeleteMeeting` / `ModifyMeeting` / `QueryMeeting` (meeting_topic, start_time, end_time,
  location, attendees; the token-taking version of levels 1-2).

An API gets its executor only when the offered schema has exactly the parameters it implements, so level 3's
`QueryMeeting(user_name)` and token-less `AddMeeting`, and every other API (health, bank, hotel, weather,
search, ...), are answered by the schema mock. Records a task's gold call deletes, modifies or queries are
seeded into the store (the dialogue presumes them), so a gold call succeeds and a wrong one gets an error.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tools.calculator import evaluate
from tools.suite import ToolSuite
from tools.tool import Tool

DEFAULT_TODAY = "2023-03-31"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_TIME_FIELDS = frozenset({"time", "start_time", "end_time", "from_time", "to_time"})
_CALL_AND_OBS = re.compile(r"<tool_call>\n(.*?)\n</tool_call>\n<obs>(.*?)</obs>", re.DOTALL)


class Store(BaseModel):
    """One record store (alarms, reminders, ...) and the four APIs over it."""

    kind: str = Field(description="Record kind, as in the API names (Alarm, Reminder, Agenda, Meeting).")
    fields: tuple[str, ...] = Field(description="Fields of a record, besides its owner.")
    key: str = Field(description="Field that names the record a Modify call changes.")

    def parameters(self, api: str) -> frozenset[str]:
        """Parameter names of the `api` over this store (ModifyAlarm moves from_time to to_time)."""
        if api == "Modify" and self.kind == "Alarm":
            return frozenset({"token", "from_time", "to_time"})
        return frozenset({"token", *self.fields})

    def required(self, api: str) -> tuple[str, ...]:
        """Parameters the `api` cannot do without: the token, and for Add and Modify the record's key."""
        if api == "Modify" and self.kind == "Alarm":
            return ("token", "from_time", "to_time")
        return ("token", self.key) if api in ("Add", "Modify") else ("token",)


STORES = {
    s.kind: s
    for s in (
        Store(kind="Alarm", fields=("time",), key="time"),
        Store(kind="Reminder", fields=("content", "time"), key="content"),
        Store(kind="Agenda", fields=("content", "time", "location"), key="content"),
        Store(
            kind="Meeting",
            fields=("meeting_topic", "start_time", "end_time", "location", "attendees"),
            key="meeting_topic",
        ),
    )
}
_VERBS = ("Add", "Delete", "Modify", "Query")


def _check(params: Mapping[str, Any], allowed: frozenset[str], required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; accepted: {sorted(allowed)}")
    missing = [p for p in required if params.get(p) in (None, "")]
    if missing:
        raise ValueError(f"missing parameter(s) {missing}")
    for name in _TIME_FIELDS & set(params):
        try:
            datetime.strptime(str(params[name]), TIME_FORMAT)
        except ValueError:
            raise ValueError(f"{name} {params[name]!r} is not in the format {TIME_FORMAT}") from None


def _owner(state: dict[str, Any], token: Any) -> str:
    owner = state["tokens"].get(token) if isinstance(token, str) else None
    if owner is None:
        raise ValueError(f"invalid token {token!r}; get one with GetUserToken")
    return str(owner)


def issue_token(username: str, password: str) -> str:
    """A stable token for credentials not seen in the task (a hash, so the same user always gets the same)."""
    return hashlib.sha256(f"{username}\0{password}".encode("utf-8", "surrogatepass")).hexdigest()[:18]


def calculator(state: dict[str, Any], params: Mapping[str, Any]) -> int | float:
    _check(params, frozenset({"formula"}), ("formula",))
    formula = params["formula"]
    if not isinstance(formula, str):
        raise ValueError(f"formula must be a string such as '(1 + 2) * 3', got {type(formula).__name__}")
    return evaluate(formula)


def get_today(state: dict[str, Any], params: Mapping[str, Any]) -> str:
    _check(params, frozenset())
    return str(state["today"])


def get_user_token(state: dict[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    _check(params, frozenset({"username", "password"}), ("username", "password"))
    username, password = str(params["username"]), str(params["password"])
    account = state["accounts"].get(username)
    if account is None:
        account = {"password": password, "token": issue_token(username, password)}
        state["accounts"][username] = account
        state["tokens"][account["token"]] = username
    elif account["password"] != password:
        raise ValueError(f"wrong password for user {username!r}")
    return {"token": account["token"]}


def _matches(record: Mapping[str, Any], owner: str, query: Mapping[str, Any]) -> bool:
    return record["owner"] == owner and all(record.get(k) == v for k, v in query.items())


def store_api(verb: str, store: Store, state: dict[str, Any], params: Mapping[str, Any]) -> Any:
    """Add, Delete, Modify or Query records of the token's user."""
    _check(params, store.parameters(verb), store.required(verb))
    owner = _owner(state, params["token"])
    records: list[dict[str, Any]] = state["records"].setdefault(store.kind, [])
    fields = {k: v for k, v in params.items() if k != "token"}
    if verb == "Add":
        if any(_matches(r, owner, fields) for r in records):
            raise ValueError(f"this {store.kind.lower()} already exists")
        records.append({"owner": owner, **fields})
        return "success"
    if verb == "Query":
        return [{k: v for k, v in r.items() if k != "owner"} for r in records if _matches(r, owner, fields)]
    if verb == "Modify" and store.kind == "Alarm":
        query, update = {"time": fields["from_time"]}, {"time": fields["to_time"]}
    elif verb == "Modify":
        query, update = {store.key: fields.pop(store.key)}, fields
    else:
        query, update = fields, {}
    found = [r for r in records if _matches(r, owner, query)]
    if not found:
        described = ", ".join(f"{k}={v!r}" for k, v in query.items())
        raise ValueError(f"no {store.kind.lower()} with {described}")
    for record in found:
        if verb == "Delete":
            records.remove(record)
        else:
            record.update(update)
    return "success"


Api = Callable[[dict[str, Any], Mapping[str, Any]], Any]
# name -> (the parameters the offered schema must have, the implementation)
APIS: dict[str, tuple[frozenset[str], Api]] = {
    "Calculator": (frozenset({"formula"}), calculator),
    "GetToday": (frozenset(), get_today),
    "GetUserToken": (frozenset({"username", "password"}), get_user_token),
    **{
        f"{verb}{store.kind}": (store.parameters(verb), functools.partial(store_api, verb, store))
        for store in STORES.values()
        for verb in _VERBS
    },
}


def runs(tool: Tool) -> bool:
    """True if `tool` is an API with a real executor here (its schema has exactly the parameters implemented)."""
    api = APIS.get(tool.name)
    properties = tool.parameters.get("properties", {})
    return api is not None and isinstance(properties, Mapping) and set(properties) == api[0]


def _literal(text: str) -> Any:
    """An observation as API-Bank's data writes it: a Python literal, or the text itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text.strip()


def seed_state(history: str, gold: Mapping[str, Any]) -> dict[str, Any]:
    """The suite state a task starts from: the clock and accounts its history shows, the tokens it uses, and
    the record its gold call deletes, modifies or queries."""
    state: dict[str, Any] = {"today": DEFAULT_TODAY, "accounts": {}, "tokens": {}, "records": {}}
    for call_text, obs_text in _CALL_AND_OBS.findall(history):
        try:
            call = json.loads(call_text)
        except ValueError:
            continue
        if not isinstance(call, dict) or not isinstance(call.get("parameters"), dict):
            continue
        obs, params = _literal(obs_text), call["parameters"]
        if call.get("name") == "GetToday" and isinstance(obs, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", obs):
            state["today"] = obs
        if call.get("name") == "GetUserToken" and isinstance(obs, dict) and isinstance(obs.get("token"), str):
            username = str(params.get("username"))
            state["accounts"][username] = {"password": str(params.get("password")), "token": obs["token"]}
            state["tokens"][obs["token"]] = username
    params = gold.get("parameters", {})
    token = params.get("token")
    if isinstance(token, str):
        state["tokens"].setdefault(token, token)  # a token from outside the dialogue: its own owner
        owner = state["tokens"][token]
        verb = next((v for v in _VERBS if str(gold.get("name", "")).startswith(v)), None)
        store = STORES.get(str(gold.get("name", ""))[len(verb or "") :])
        if verb in ("Delete", "Modify", "Query") and store is not None:
            fields = {k: v for k, v in params.items() if k in store.fields}
            if verb == "Modify" and store.kind == "Alarm":
                fields = {"time": params.get("from_time")}
            elif verb == "Modify":
                fields = {store.key: params.get(store.key)}
            state["records"][store.kind] = [{"owner": owner, **fields}]
    return state


class ApiBankSuite(ToolSuite):
    """API-Bank's APIs for one episode: `reset(options=Task.suite_options)` takes the task's offered tools
    (`tools`: their name, description and parameters) and its seeded `state`; the tools in `runs` execute,
    the rest answer with the schema mock."""

    def __init__(self, timeout_s: float | None = None) -> None:
        super().__init__("api_bank", [], timeout_s)
        self.state = {"tools": [], "today": DEFAULT_TODAY, "accounts": {}, "tokens": {}, "records": {}}

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.set_state({"tools": list(options.get("tools", [])), **options.get("state", seed_state("", {}))})

    def set_state(self, state: Any) -> None:
        super().set_state(state)
        self.tools = [self._with_executor(Tool(**spec)) for spec in self.state["tools"]]
        self._by_name = {t.name: t for t in self.tools}

    def _with_executor(self, tool: Tool) -> Tool:
        if not runs(tool):
            return tool
        return tool.model_copy(update={"executor": functools.partial(self._run, tool.name)})

    def _run(self, api: str, **params: Any) -> Any:
        return APIS[api][1](self.state, params)
