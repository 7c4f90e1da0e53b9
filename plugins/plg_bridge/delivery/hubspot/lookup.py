"""HubSpot tasks, exactly once: each task carries the signal key it was made for, so a task whose
create answer was lost can be found again instead of being created twice.

- `keyed_task_input`: the batch-create input with `plg_signal_key` (a custom task property,
  created from `TASK_FIELDS` by the base) and `objectWriteTraceId` = the record key, so a 207 names
  exactly the inputs that failed;
- `task_outcomes`: one outcome per input from a batch-create answer: 200/201 and 207 results are
  matched by their `plg_signal_key`, errors by the trace ids in their context; an input nothing
  accounts for (or any answer that is not HubSpot's) has an unknown outcome (DELIVERY_UNKNOWN),
  which the engine looks up (journal.py);
- `find_tasks`: CRM search on tasks, `plg_signal_key` IN [keys] (at most 100 values per filter),
  paged; HubSpot's search is eventually consistent, so the engine asks again after a few seconds
  before deciding a task is not there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plg_bridge.delivery.hubspot.mapping import TASK_KEY_PROPERTY, task_input
from plg_bridge.delivery.outcomes import RowOutcome
from plg_bridge.delivery.transport import DestinationError, body_snippet, json_body

if TYPE_CHECKING:
    from plg_bridge.delivery.hubspot.client import HubSpotClient

SEARCH_PAGE = 100  # HubSpot: at most 100 values in one IN filter, 200 results per page
UNKNOWN = "DELIVERY_UNKNOWN"


def keyed_task_input(key: str, payload: Mapping[str, Any], company_id: str) -> dict[str, Any]:
    """`task_input` plus the signal key as a task property and as the input's trace id."""
    item = task_input(payload, company_id)
    item["properties"] = {**item["properties"], TASK_KEY_PROPERTY: key}
    item["objectWriteTraceId"] = key
    return item


def task_outcomes(keys: Sequence[str], status: int, body: Any, text: str = "") -> list[RowOutcome]:
    """One outcome per key (same order) from a tasks batch-create answer."""
    if status in (200, 201, 207) and isinstance(body, Mapping):
        found: dict[str, RowOutcome] = {}
        for result in body.get("results") or []:
            props = result.get("properties") if isinstance(result, Mapping) else None
            key = str((props or {}).get(TASK_KEY_PROPERTY) or result.get("objectWriteTraceId") or "")
            if key in keys:
                found[key] = RowOutcome(key, "created", str(result.get("id")))
        for error in body.get("errors") or []:
            if not isinstance(error, Mapping):
                continue
            context = error.get("context") if isinstance(error.get("context"), Mapping) else {}
            named = context.get("objectWriteTraceId") or []
            details = [d for d in error.get("errors") or [] if isinstance(d, Mapping)]
            code = next((str(d["code"]) for d in details if d.get("code")), None) or str(
                error.get("category") or "ERROR"
            )
            for key in [str(n) for n in (named if isinstance(named, list) else [named])]:
                if key in keys and key not in found:
                    found[key] = RowOutcome(
                        key, "failed", None, code, str(error.get("message") or code)[:500]
                    )
        why = f"HTTP {status}: the answer does not account for this task; it may exist"
        return [found.get(k) or RowOutcome(k, "failed", None, UNKNOWN, why) for k in keys]
    if status >= 500:  # a gateway may answer 5xx after HubSpot created the tasks
        return [RowOutcome(k, "failed", None, f"HTTP_{status}", text[:300] or f"HTTP {status}") for k in keys]
    message = body.get("message") if isinstance(body, Mapping) else None
    return [RowOutcome(k, "failed", None, f"HTTP_{status}", str(message or text[:300])) for k in keys]


def find_tasks(client: HubSpotClient, keys: Sequence[str]) -> dict[str, str | None]:
    """{signal key: task id} of the tasks HubSpot's search returns for `keys` (missing: not found).
    Raises DestinationError when the search itself fails (the rows then wait for on-call)."""
    found: dict[str, str | None] = {}
    for start in range(0, len(keys), SEARCH_PAGE):
        chunk = list(keys[start : start + SEARCH_PAGE])
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [
                    {"filters": [{"propertyName": TASK_KEY_PROPERTY, "operator": "IN", "values": chunk}]}
                ],
                "properties": [TASK_KEY_PROPERTY],
                "limit": 200,
            }
            if after:
                body["after"] = after
            response = client.rest.request("POST", "/crm/v3/objects/tasks/search", json=body)
            answer = json_body(response)
            if response.status_code != 200 or not isinstance(answer, Mapping):
                raise DestinationError(
                    f"HubSpot task search: HTTP {response.status_code} {body_snippet(response)}",
                    status=response.status_code,
                    body=body_snippet(response),
                )
            for result in answer.get("results") or []:
                key = str((result.get("properties") or {}).get(TASK_KEY_PROPERTY) or "")
                if key in chunk:
                    found.setdefault(key, str(result.get("id")))
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
    return found
