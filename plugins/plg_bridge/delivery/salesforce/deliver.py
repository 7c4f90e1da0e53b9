"""Salesforce delivery steps: Accounts (Collections or Bulk) and the PQL lead status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from plg_bridge.delivery.outcomes import RowOutcome, failed, outcomes_frame
from plg_bridge.delivery.salesforce.client import (
    SalesforceClient,
    SalesforceError,
    SalesforceStop,
    _check_identifier,
    _counts,
    _dedupe,
    _soql_quote,
)
from plg_bridge.delivery.salesforce.mapping import (
    COLLECTION_LIMIT,
    DEFAULT_BULK_THRESHOLD,
    DEFAULT_EXTERNAL_ID_FIELD,
    DEFAULT_LEAD_ORG_FIELD,
    DEFAULT_PQL_STATUS,
    SOQL_IN_CHUNK,
    lead_status_outcomes,
)
from plg_bridge.delivery.transport import (
    RetriesExhausted,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# -- delivery entry points ------------------------------------------------------------------------


def deliver_accounts(
    client: SalesforceClient,
    records: Sequence[Mapping[str, Any]],
    bulk_threshold: int | None = DEFAULT_BULK_THRESHOLD,
    *,
    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD,
    sobject: str = "Account",
    batch_size: int = COLLECTION_LIMIT,
    bulk_poll_interval: float = 5.0,
    bulk_max_polls: int = 120,
) -> pd.DataFrame:
    """Upsert Account records (from `account_records`); one outcome row per record, in order.

    A new Account needs a Name: an organization without one yet is created with its id as the
    Name (`CREATE_FALLBACKS`), and only when the create was refused for lacking it.

    More than `bulk_threshold` records (None: never) go through one Bulk API 2.0 job, fewer
    through sObject Collections. A repeated record key fails as DUPLICATE_ID and is not sent.
    Columns: record_key, status (created|updated|failed), destination_id, error_code,
    error_message. Destination trouble shows up in the frame, not as an exception.
    """
    keys = [str(r["record_key"]) for r in records]
    send, repeats = _dedupe(keys)
    unique = [records[n] for n in send]
    if not unique:
        results: list[RowOutcome] = []
    elif bulk_threshold is not None and len(unique) > bulk_threshold:
        results = client.bulk_upsert(
            sobject, external_id_field, unique, poll_interval=bulk_poll_interval, max_polls=bulk_max_polls
        )
    else:
        results = client.upsert_collection(sobject, external_id_field, unique, batch_size=batch_size)
    results = _fill_required_on_create(client, sobject, external_id_field, unique, results, batch_size)
    outcomes: list[RowOutcome | None] = [None] * len(records)
    for n, outcome in zip(send, results, strict=True):
        outcomes[n] = outcome
    for n, outcome in repeats.items():
        outcomes[n] = outcome
    if any(o is None for o in outcomes):
        raise RuntimeError("internal error: a record has no outcome")
    final = cast("list[RowOutcome]", outcomes)
    log.info("Salesforce %s delivery: %s (API usage %s)", sobject, _counts(final), _usage(client))
    return outcomes_frame(final)


# Required fields of a new record and the fallback each takes until real data arrives: the
# organization id (the record key) as the Account's Name. Sent only for records whose create was
# refused for lacking it, so a name on an existing Account (one a person may have set) is never
# overwritten: an upsert that finds the Account updates it without Name.
CREATE_FALLBACKS: dict[str, dict[str, Callable[[str], str]]] = {"Account": {"Name": lambda key: key}}


def _fill_required_on_create(  # noqa: PLR0917
    client: SalesforceClient,
    sobject: str,
    external_id_field: str,
    records: Sequence[Mapping[str, Any]],
    results: list[RowOutcome],
    batch_size: int,
) -> list[RowOutcome]:
    """Records refused with REQUIRED_FIELD_MISSING (a new record without Name: nothing was
    applied) go again once with the documented fallbacks filled in; one outcome per record."""
    fallbacks = CREATE_FALLBACKS.get(sobject, {})
    retry = [
        n
        for n, (record, outcome) in enumerate(zip(records, results, strict=True))
        if outcome.error_code == "REQUIRED_FIELD_MISSING"
        and any(f not in record["fields"] for f in fallbacks)
    ]
    if not retry:
        return results
    filled = [
        {
            "record_key": records[n]["record_key"],
            "fields": {
                **{f: make(str(records[n]["record_key"])) for f, make in fallbacks.items()},
                **records[n]["fields"],
            },
        }
        for n in retry
    ]
    log.info(
        "Salesforce: %d new %s records without %s: sent with the fallback",
        len(retry),
        sobject,
        ", ".join(fallbacks),
    )
    again = client.upsert_collection(sobject, external_id_field, filled, batch_size=batch_size)
    results = list(results)
    for n, outcome in zip(retry, again, strict=True):
        results[n] = outcome
    return results


def _usage(client: SalesforceClient) -> str:
    return "unknown" if client.api_usage is None else "{}/{}".format(*client.api_usage)


def set_lead_status(
    client: SalesforceClient,
    org_ids: Iterable[str],
    status: str = DEFAULT_PQL_STATUS,
    org_field: str = DEFAULT_LEAD_ORG_FIELD,
    *,
    batch_size: int = COLLECTION_LIMIT,
) -> list[RowOutcome]:
    """Set the leads of each organization to `status`; one outcome per organization (record_key =
    org id), in first-occurrence order.

    1. `status` must be a `LeadStatus` ApiName (queried once per client): otherwise every row
       fails LEAD_STATUS_MISSING and nothing is queried or updated.
    2. Leads are read with `SELECT Id, Status, <org_field> FROM Lead WHERE <org_field> IN (...)`
       (200 org ids per query, pages followed). Leads already at `status` are skipped, and so are
       converted leads (status with IsConverted), which Salesforce does not let us edit.
    3. The rest are updated with sObject Collections (200 per call, allOrNone false).
    See `lead_status_outcomes` for how lead results make the organization's outcome.
    """
    _check_identifier(org_field)
    orgs = list(dict.fromkeys(str(o) for o in org_ids))
    if not orgs:
        return []
    if client.stopped is not None:
        return failed(orgs, client.stopped.code, f"not sent: {client.stopped}")
    try:
        statuses = client.lead_statuses()
    except (SalesforceStop, SalesforceError) as exc:
        return failed(orgs, exc.code, f"reading LeadStatus: {exc}")
    except RetriesExhausted as exc:
        return failed(orgs, exc.code, f"reading LeadStatus: {exc}")
    if status not in statuses:
        available = ", ".join(repr(s) for s in statuses) or "none"
        message = (
            f"Lead status {status!r} does not exist in this org's LeadStatus values ({available}); "
            "add it to the Lead Status picklist or configure an existing value"
        )
        log.error("Salesforce: %s", message)
        return failed(orgs, "LEAD_STATUS_MISSING", message)
    converted = {name for name, is_converted in statuses.items() if is_converted}

    wanted = set(orgs)
    leads_by_org: dict[str, list[str]] = {}
    org_errors: dict[str, tuple[str, str]] = {}
    updates: list[dict[str, Any]] = []
    for start in range(0, len(orgs), SOQL_IN_CHUNK):
        chunk = orgs[start : start + SOQL_IN_CHUNK]
        soql = (
            f"SELECT Id, Status, {org_field} FROM Lead "
            f"WHERE {org_field} IN ({', '.join(_soql_quote(o) for o in chunk)})"
        )
        try:
            rows = client.query(soql)
        except (SalesforceStop, SalesforceError) as exc:
            org_errors.update(dict.fromkeys(chunk, (exc.code, f"querying leads: {exc}")))
            continue
        except RetriesExhausted as exc:
            org_errors.update(dict.fromkeys(chunk, (exc.code, f"querying leads: {exc}")))
            continue
        for row in rows:
            org = row.get(org_field)
            if org is None or str(org) not in wanted:  # SOQL matches text case-insensitively
                continue
            leads_by_org.setdefault(str(org), []).append(str(row["Id"]))
            if row.get("Status") != status and row.get("Status") not in converted:
                updates.append({"Id": str(row["Id"]), "Status": status})
    results = client.update_collection("Lead", updates, batch_size=batch_size) if updates else []
    lead_results = {r.record_key: r for r in results}
    outcomes = lead_status_outcomes(orgs, leads_by_org, lead_results, org_errors)
    log.info(
        "Salesforce lead status %r: %d organizations, %d leads found, %d updated, %d failed",
        status,
        len(orgs),
        sum(len(v) for v in leads_by_org.values()),
        sum(r.status != "failed" for r in results),
        sum(r.status == "failed" for r in results),
    )
    return outcomes


def deliver_lead_status(
    client: SalesforceClient,
    org_ids: Iterable[str],
    status: str = DEFAULT_PQL_STATUS,
    org_field: str = DEFAULT_LEAD_ORG_FIELD,
    *,
    batch_size: int = COLLECTION_LIMIT,
) -> pd.DataFrame:
    """`set_lead_status` as an outcomes frame (one row per distinct organization)."""
    return outcomes_frame(set_lead_status(client, org_ids, status, org_field, batch_size=batch_size))
