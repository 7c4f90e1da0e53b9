"""Salesforce REST over the shared transport: OAuth client credentials, SOQL, Collections, Bulk 2.0."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlencode

import requests

from plg_bridge.delivery.base import InFlight, Stop, send_batches
from plg_bridge.delivery.outcomes import RowOutcome, failed
from plg_bridge.delivery.salesforce.mapping import (
    _IDENTIFIER,
    _USAGE,
    BULK_FINAL_STATES,
    COLLECTION_LIMIT,
    DEFAULT_API_VERSION,
    DEFAULT_CONN_ID,
    RETRYABLE_ERROR_CODES,
    _plain,
    bulk_csv,
    bulk_outcomes,
    collection_outcomes,
    error_of,
)
from plg_bridge.delivery.transport import (
    BudgetReserved,
    DailyBudget,
    DestinationError,
    FatalDestinationError,
    OAuth2ClientCredentials,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    TokenRefused,
    body_snippet,
    json_body,
    paginate,
)

log = logging.getLogger(__name__)

# Collections calls in flight per target. Salesforce meters a daily request count, not a rate,
# and caps concurrent long-running calls (25 per org); upserts of one sObject in parallel
# batches lock rows they share (UNABLE_TO_LOCK_ROW, retried), so a moderate default.
DEFAULT_IN_FLIGHT = 10
# Bulk jobs tried when the CSV upload fails transiently (5xx, no answer): each failed one is
# aborted first, and an aborted job processed nothing.
BULK_FRESH_JOBS = 3
# Rounds for records a 200 answer failed one by one with a transient code (a lock held by another
# job): the call itself is retried by RestClient only, so a batch costs at most 6 x 3 calls.
RECORD_ROUNDS = 3
# Share of the daily API request limit left to the customer's other integrations (settings:
# salesforce.api_reserve): at fewer remaining calls, the run stops and retries next run.
DEFAULT_API_RESERVE = 0.05

# -- errors -----------------------------------------------------------------------------------------


class SalesforceError(DestinationError):
    """A call Salesforce refused; `code` is its errorCode (or HTTP_<status>)."""

    def __init__(self, message: str, *, code: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status, body=body)
        self.code = code


class SalesforceStop(FatalDestinationError):
    """Stop this destination for the run: daily API limit or credentials Salesforce refuses.

    Once raised, the client refuses every further call with the same error (no network).
    """

    def __init__(self, message: str, *, code: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status, body=body)
        self.code = code


# -- Salesforce's transport policy ----------------------------------------------------------------


def _error_codes(response: requests.Response) -> set[str]:
    body = json_body(response)
    if isinstance(body, list):
        return {str(e.get("errorCode")) for e in body if isinstance(e, Mapping) and e.get("errorCode")}
    return set()


def salesforce_is_transient(response: requests.Response) -> bool:
    """A 4xx Salesforce asks to retry: a row lock held by another job, the API briefly unavailable."""
    return 400 <= response.status_code < 500 and bool(_error_codes(response) & RETRYABLE_ERROR_CODES)


def salesforce_is_fatal(response: requests.Response) -> bool:
    """The daily API request limit is spent: retrying in this run only burns what is left."""
    return response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in _error_codes(response)


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """(used, max) from `Sforce-Limit-Info: api-usage=N/M`."""
    match = _USAGE.search(value or "")
    return (int(match[1]), int(match[2])) if match else None


def normalize_version(version: str) -> str:
    """'v67.0', '67.0' and '67' all mean 'v67.0'."""
    text = str(version).strip().lower().removeprefix("v")
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError(f"Salesforce API version {version!r} is not like 'v67.0'")
    return f"v{float(text):.1f}"


def _soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceClient:
    """Salesforce REST over `RestClient` with an `OAuth2ClientCredentials` session auth.

    `base_url` is the My Domain URL (https://<domain>.my.salesforce.com); the token answer's
    `instance_url` is used for data calls, as Salesforce asks. The auth object fetches the token
    on first use and RestClient refreshes it once when a call answers 401 INVALID_SESSION_ID
    (that call is then sent again: a 401 means nothing was applied). A 403
    REQUEST_LIMIT_EXCEEDED, credentials the token endpoint refuses, or a daily API budget down to
    its reserve (`api_reserve` of the limit `Sforce-Limit-Info` reports, left to the customer's
    other integrations; checked before each call, so calls already in flight finish and a Bulk
    job once created is seen through) stop the client for the run (`stopped`): later calls raise
    the same `SalesforceStop` without touching the network. No rate limiter by default: Salesforce meters
    a daily request count, not a rate; pass `limiter` to cap concurrency-heavy runs.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        api_version: str = DEFAULT_API_VERSION,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        use_instance_url: bool = True,
        max_in_flight: int | None = None,
        api_reserve: float = DEFAULT_API_RESERVE,
        name: str | None = None,
        share_token: bool = False,
    ) -> None:
        if not base_url or "://" not in base_url:
            raise ValueError(
                f"Salesforce base URL {base_url!r} needs a scheme (https://...my.salesforce.com)"
            )
        if not client_id or not client_secret:
            raise ValueError("SalesforceClient needs a client id and a client secret")
        session = session or requests.Session()
        self.base_url = base_url.rstrip("/")
        self.name = name or f"Salesforce {self.base_url}"
        self.api_version = normalize_version(api_version)
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.use_instance_url = use_instance_url
        self.max_in_flight = max_in_flight
        make_auth = OAuth2ClientCredentials.shared if share_token else OAuth2ClientCredentials
        self.auth = make_auth(
            f"{self.base_url}/services/oauth2/token",
            client_id,
            client_secret,
            session=session,
            name=self.name,
            policy=self.policy,
            timeout=timeout,
            sleep=sleep,
        )
        session.auth = self.auth  # the bearer token only; never basic auth with the client secret
        self.rest = RestClient(
            session,
            self.base_url,
            policy=self.policy,
            limiter=limiter,
            timeout=timeout,
            sleep=sleep,
            is_fatal=salesforce_is_fatal,
            retry_if=salesforce_is_transient,
        )
        # per client, so per target and run (the engine builds one per send): its first answer
        # tells where the day's count stands, and a new run learns it afresh
        self.budget = DailyBudget(api_reserve, name=self.name)
        self.stopped: SalesforceStop | None = None
        self._lead_statuses: dict[str, bool] | None = None

    def __repr__(self) -> str:
        return f"SalesforceClient({self.base_url!r}, api_version={self.api_version!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> SalesforceClient:
        """Client for an Airflow HTTP connection: host = My Domain URL, login/password = client
        id/secret, extra `{"api_version": "v67.0"}` (a keyword argument wins over the extra).
        Clients of one connection share one token in the process."""
        from plg_bridge.airflow.hooks import connection_session

        found = connection_session(conn_id)
        if not found.login or not found.password:
            raise ValueError(
                f"Airflow connection {conn_id!r} needs login (client id) and password "
                "(client secret) of the External Client App"
            )
        if found.timeout is not None:
            kwargs.setdefault("timeout", found.timeout)
        if found.extra.get("api_version"):
            kwargs.setdefault("api_version", str(found.extra["api_version"]))
        kwargs.setdefault("name", f"Salesforce connection {conn_id!r}")
        kwargs.setdefault("share_token", True)
        return cls(found.base_url, found.login, found.password, session=found.session, **kwargs)

    @property
    def token_fetches(self) -> int:
        """Token calls this client's auth made (shared auth: every client of the credential)."""
        return self.auth.fetches

    @property
    def api_usage(self) -> tuple[int, int] | None:
        """(used, limit) of the daily API requests, from the last `Sforce-Limit-Info` seen."""
        budget = self.budget
        return None if budget.used is None or budget.limit is None else (budget.used, budget.limit)

    def _stop(self, code: str, message: str, status: int | None = None, body: str = "") -> SalesforceStop:
        if self.stopped is None:
            self.stopped = SalesforceStop(message, code=code, status=status, body=body)
            log.error("Salesforce stopped for this run: %s %s", code, message)
        return self.stopped

    # -- calls ----------------------------------------------------------------------------------

    def data_url(self, path: str) -> str:
        """Absolute URL: as given, `/services/...` on the instance, else under /services/data/vXX.X/.
        The instance is the token answer's `instance_url` (the token is fetched first if needed)."""
        if "://" in path:
            return path
        instance = (self.auth.instance_url if self.use_instance_url else None) or self.base_url
        if path.startswith("/services/"):
            return f"{instance}{path}"
        return f"{instance}/services/data/{self.api_version}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        within_job: bool = False,
    ) -> requests.Response:
        """One authenticated call; returns the first answer that is not retried.

        The daily budget is checked before the call unless `within_job`: a Bulk job once created
        is seen through (upload, close, polls, results, abort: a few calls), since stopping it
        half way would leave its rows unknown.

        Retries are RestClient's (the one retry layer): 429/5xx/network errors and a 4xx whose
        errorCode is UNABLE_TO_LOCK_ROW or API_TEMPORARILY_UNAVAILABLE (`salesforce_is_transient`);
        so is the one new token after a 401. Raises `SalesforceStop` (daily limit, the budget's
        reserve, refused credentials), `SalesforceError` (token endpoint failing otherwise) and
        `RetriesExhausted`.
        """
        if self.stopped is not None:
            raise self.stopped
        try:
            if not within_job:
                self.budget.check()
            response = self.rest.request(
                method, self.data_url(path), json=json, data=data, headers=headers, idempotent=idempotent
            )
        except TokenRefused as exc:
            raise self._stop(exc.code, f"token request refused: {exc}", exc.status, exc.body) from exc
        except BudgetReserved as exc:
            raise self._stop(exc.code, str(exc)) from exc
        except FatalDestinationError as exc:
            code, message = error_of(exc.status or 0, _loads(exc.body), exc.body)
            if exc.status == 401:
                message = f"{self.name} refused a fresh token: {message}"
            raise self._stop(code, message, exc.status, exc.body) from exc
        except RetriesExhausted:
            raise
        except DestinationError as exc:  # the token endpoint failed otherwise (404, 500 once)
            code = f"HTTP_{exc.status}" if exc.status else "TOKEN_UNAVAILABLE"
            raise SalesforceError(str(exc), code=code, status=exc.status, body=exc.body) from exc
        self._note_usage(response)
        return response

    def _note_usage(self, response: requests.Response) -> None:
        """Learn the daily budget from `Sforce-Limit-Info`: the next call checks it."""
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is None:
            return
        used, limit = usage
        self.budget.learn(used, limit)
        log.debug("Salesforce API usage %d/%d", used, limit)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """All records of a SOQL query, following `nextRecordsUrl`. Raises `SalesforceError`."""

        def fetch(path: str) -> Mapping[str, Any]:
            response = self.request("GET", path)
            body = json_body(response)
            if response.status_code != 200 or not isinstance(body, Mapping):
                code, message = error_of(response.status_code, body, body_snippet(response))
                raise SalesforceError(
                    f"query failed: {code} {message}", code=code, status=response.status_code
                )
            return body

        def next_of(page: Mapping[str, Any]) -> str | None:
            return None if page.get("done", True) else page.get("nextRecordsUrl")

        pages = paginate(f"query?{urlencode({'q': soql})}", fetch, next_of)
        return [record for page in pages for record in page.get("records") or []]

    def lead_statuses(self) -> dict[str, bool]:
        """Lead status ApiName -> IsConverted, from `LeadStatus` (cached for this client)."""
        if self._lead_statuses is None:
            rows = self.query("SELECT ApiName, IsConverted FROM LeadStatus")
            self._lead_statuses = {str(r["ApiName"]): bool(r.get("IsConverted")) for r in rows}
        return dict(self._lead_statuses)

    # -- sObject Collections --------------------------------------------------------------------

    def _collection(
        self, path: str, records: list[dict[str, Any]], keys: list[str], *, upsert: bool
    ) -> list[RowOutcome]:
        """One collections call (<= 200 records); records that failed with a transient error
        (UNABLE_TO_LOCK_ROW, API_TEMPORARILY_UNAVAILABLE) are sent again, with backoff (upserts by
        external id and updates by Id are safe to replay). Never raises: trouble is outcomes.
        """
        outcomes: list[RowOutcome | None] = [None] * len(records)
        todo = list(range(len(records)))
        for round_ in range(1, RECORD_ROUNDS + 1):
            payload = {"allOrNone": False, "records": [records[n] for n in todo]}
            try:
                response = self.request("PATCH", path, json=payload)
            except (SalesforceStop, SalesforceError) as exc:
                results = failed([keys[n] for n in todo], exc.code, str(exc))
            except RetriesExhausted as exc:
                results = failed([keys[n] for n in todo], exc.code, str(exc))
            else:
                results = collection_outcomes(
                    [keys[n] for n in todo],
                    response.status_code,
                    json_body(response),
                    "" if response.status_code == 200 else body_snippet(response),
                    upsert=upsert,
                )
            for n, outcome in zip(todo, results, strict=True):
                outcomes[n] = outcome
            todo = [n for n, o in zip(todo, results, strict=True) if o.error_code in RETRYABLE_ERROR_CODES]
            if not todo or round_ == RECORD_ROUNDS:
                break
            wait = self.policy.backoff(round_)
            log.warning("Salesforce: %d records locked/unavailable, resending in %.2fs", len(todo), wait)
            self.sleep(wait)
        return cast("list[RowOutcome]", outcomes)

    def _batches(
        self,
        path: str,
        records: list[dict[str, Any]],
        keys: list[str],
        *,
        upsert: bool,
        batch_size: int,
        label: str,
    ) -> list[RowOutcome]:
        if not 1 <= batch_size <= COLLECTION_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {COLLECTION_LIMIT}")
        starts = list(range(0, len(records), batch_size))

        def send(start: int) -> tuple[list[RowOutcome], Stop | None]:
            chunk, chunk_keys = records[start : start + batch_size], keys[start : start + batch_size]
            if self.stopped is not None:  # stopped while this batch waited for its turn
                return failed(chunk_keys, self.stopped.code, f"not sent: {self.stopped}"), None
            results = self._collection(path, chunk, chunk_keys, upsert=upsert)
            stop = (self.stopped.code, str(self.stopped)) if self.stopped is not None else None
            return results, stop

        outcomes = send_batches(
            starts,
            send,
            lambda start: keys[start : start + batch_size],
            in_flight=InFlight(
                None, fixed=self.max_in_flight or DEFAULT_IN_FLIGHT, backing_off=lambda: self.rest.waiting
            ),
            what=f"Salesforce {label}",
        )
        log.info("Salesforce %s: %d batches, %s", label, len(starts), _counts(outcomes))
        return outcomes

    def upsert_collection(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = COLLECTION_LIMIT,
    ) -> list[RowOutcome]:
        """Upsert `records` ({record_key, fields}) by `external_id_field`, <= 200 per call.

        One outcome per record, in order. After a stop (daily limit, credentials) the remaining
        batches are not sent and their rows fail with the stop's code.
        """
        _check_identifier(sobject, external_id_field)
        payload = [_sobject_record(sobject, external_id_field, r) for r in records]
        keys = [str(r["record_key"]) for r in records]
        path = f"composite/sobjects/{sobject}/{external_id_field}"
        return self._batches(
            path, payload, keys, upsert=True, batch_size=batch_size, label=f"{sobject} upsert"
        )

    def update_collection(
        self, sobject: str, records: Sequence[Mapping[str, Any]], batch_size: int = COLLECTION_LIMIT
    ) -> list[RowOutcome]:
        """Update records by `Id` (`{"Id": ..., field: value}`); outcomes keyed by record Id."""
        _check_identifier(sobject)
        payload = [{"attributes": {"type": sobject}, **r} for r in records]
        keys = [str(r["Id"]) for r in records]
        return self._batches(
            "composite/sobjects",
            payload,
            keys,
            upsert=False,
            batch_size=batch_size,
            label=f"{sobject} update",
        )

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def bulk_upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        poll_interval: float = 5.0,
        max_polls: int = 120,
    ) -> list[RowOutcome]:
        """Upsert through one Bulk API 2.0 ingest job; one outcome per record, in order.

        Lifecycle: create job -> PUT the CSV -> UploadComplete -> poll (at most `max_polls`
        GETs, `poll_interval` apart; a job still running then is aborted) -> read
        successfulResults, failedResults and unprocessedrecords and map them back by external id.
        """
        _check_identifier(sobject, external_id_field)
        keys = [str(r["record_key"]) for r in records]
        if not records:
            return []
        if self.stopped is not None:
            return failed(keys, self.stopped.code, f"not sent: {self.stopped}")
        job_id: str | None = None
        csv_bytes = bulk_csv(records, external_id_field).encode("utf-8")
        try:
            for fresh in range(1, BULK_FRESH_JOBS + 1):
                job_id = self._create_job(sobject, external_id_field)
                try:  # the creation's answer tells a new client where the day's count stands
                    self.budget.check()
                except BudgetReserved as exc:
                    self._abort(job_id)
                    raise self._stop(exc.code, str(exc)) from exc
                try:
                    upload = self.request(
                        "PUT",
                        f"jobs/ingest/{job_id}/batches",
                        data=csv_bytes,
                        headers={"Content-Type": "text/csv"},
                        idempotent=False,  # a second upload to one job is refused: never replay it
                        within_job=True,
                    )
                except RetriesExhausted as exc:  # no answer: the job may hold part of the data
                    upload, why = None, str(exc)
                else:
                    why = f"HTTP {upload.status_code}"
                transient = upload is None or upload.status_code >= 500 or upload.status_code == 429
                if transient and fresh < BULK_FRESH_JOBS:
                    # An aborted job processes nothing, so a fresh job with the same CSV is safe
                    log.warning("Salesforce Bulk job %s upload failed (%s): aborted, new job", job_id, why)
                    self._abort(job_id)
                    self.sleep(self.policy.backoff(fresh))
                    continue
                break
            if upload is None:
                self._abort(job_id)
                return failed(keys, "RETRIES_EXHAUSTED", f"Bulk job {job_id} upload: {why}")
            closed = self.request(
                "PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"}, within_job=True
            )
            if closed.status_code != 200 and "INVALIDJOBSTATE" not in _error_codes(closed):
                code, message = error_of(closed.status_code, json_body(closed), body_snippet(closed))
                self._abort(job_id)
                return failed(keys, code, f"Bulk job {job_id} could not be closed: {message}")
            info = self._wait_for_job(job_id, poll_interval, max_polls)
            note = f"job {job_id} {info.get('state')}"
            if info.get("errorMessage"):
                note += f": {info['errorMessage']}"
            log.info(
                "Salesforce Bulk %s: %s processed, %s failed",
                note,
                info.get("numberRecordsProcessed"),
                info.get("numberRecordsFailed"),
            )
            results = {kind: self._job_results(job_id, kind) for kind in _RESULT_KINDS}
        except SalesforceStop as stop:
            return failed(keys, stop.code, str(stop))
        except SalesforceError as exc:
            if job_id is not None:
                self._abort(job_id)
            return failed(keys, exc.code, str(exc))
        except RetriesExhausted as exc:
            if job_id is not None:
                self._abort(job_id)
            return failed(keys, exc.code, str(exc))
        outcomes = bulk_outcomes(
            keys,
            external_id_field,
            results["successfulResults"],
            results["failedResults"],
            results["unprocessedrecords"],
            job_note=note,
        )
        log.info("Salesforce %s bulk upsert: %s", sobject, _counts(outcomes))
        return outcomes

    def _create_job(self, sobject: str, external_id_field: str) -> str:
        spec = {
            "object": sobject,
            "operation": "upsert",
            "externalIdFieldName": external_id_field,
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        response = self.request("POST", "jobs/ingest", json=spec)
        body = json_body(response)
        if response.status_code not in (200, 201) or not isinstance(body, Mapping) or not body.get("id"):
            code, message = error_of(response.status_code, body, body_snippet(response))
            raise SalesforceError(f"Bulk job not created: {message}", code=code, status=response.status_code)
        return str(body["id"])

    def _wait_for_job(self, job_id: str, poll_interval: float, max_polls: int) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for poll in range(1, max_polls + 1):
            response = self.request("GET", f"jobs/ingest/{job_id}", within_job=True)
            body = json_body(response)
            if response.status_code != 200 or not isinstance(body, Mapping):
                code, message = error_of(response.status_code, body, body_snippet(response))
                raise SalesforceError(f"Bulk job {job_id} status: {message}", code=code)
            info = dict(body)
            if info.get("state") in BULK_FINAL_STATES:
                return info
            if poll < max_polls:
                self.sleep(poll_interval)
        log.warning(
            "Salesforce Bulk job %s still %s after %d polls: aborting", job_id, info.get("state"), max_polls
        )
        aborted = self._abort(job_id)
        info = {**info, **(aborted or {})}
        info.setdefault("state", "Aborted")
        info["errorMessage"] = f"not finished after {max_polls} polls, aborted"
        return info

    def _abort(self, job_id: str) -> dict[str, Any] | None:
        """Best effort: abort a job we give up on (its unprocessed rows are retried next run)."""
        try:
            response = self.request(
                "PATCH", f"jobs/ingest/{job_id}", json={"state": "Aborted"}, within_job=True
            )
        except DestinationError as exc:
            log.warning("Salesforce Bulk job %s not aborted: %s", job_id, exc)
            return None
        body = json_body(response)
        return dict(body) if response.status_code == 200 and isinstance(body, Mapping) else None

    def _job_results(self, job_id: str, kind: str) -> str | None:
        response = self.request(
            "GET", f"jobs/ingest/{job_id}/{kind}/", headers={"Accept": "text/csv"}, within_job=True
        )
        if response.status_code != 200:
            log.warning(
                "Salesforce Bulk job %s %s: HTTP %d %s",
                job_id,
                kind,
                response.status_code,
                body_snippet(response),
            )
            return None
        return response.content.decode("utf-8-sig")


_RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _check_identifier(*names: str) -> None:
    for name in names:
        if not _IDENTIFIER.match(name or ""):
            raise ValueError(f"{name!r} is not a Salesforce API name")


def _sobject_record(sobject: str, external_id_field: str, record: Mapping[str, Any]) -> dict[str, Any]:
    fields = {k: _plain(v) for k, v in record["fields"].items() if k.lower() != external_id_field.lower()}
    return {"attributes": {"type": sobject}, external_id_field: str(record["record_key"]), **fields}


def _counts(outcomes: Iterable[RowOutcome]) -> str:
    counts = {"created": 0, "updated": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _dedupe(keys: Sequence[str]) -> tuple[list[int], dict[int, RowOutcome]]:
    """Positions to send (first occurrence of each key) and DUPLICATE_ID outcomes for repeats."""
    seen: set[str] = set()
    send, repeats = [], {}
    for n, key in enumerate(keys):
        if key in seen:
            repeats[n] = RowOutcome(
                key, "failed", None, "DUPLICATE_ID", "record key repeated in this delivery"
            )
        else:
            seen.add(key)
            send.append(n)
    return send, repeats


# -- Airflow glue (imported lazily) ---------------------------------------------------------------

_OWN_EXTRAS = ("api_version",)
