"""Who is left out of every model, and how many.

The seed's advice ("filter internal users by email domain on the dashboard") only hides them from
one chart. Here three kinds of persons are excluded from every person-level model, and counted so
a report can say what was dropped:

- internal: any distinct id of the stitched person whose latest email (person property
  `models.email_property`, from `$set` or person properties, known before T) is at one of
  `models.internal_email_domains` or a subdomain of one;
- opted out: the latest value of `models.opt_out_property` across the person's distinct ids is
  truthy (true / 1 / yes / y / on, any case);
- test organization: the person acted in one of `models.test_org_ids` before T.

A person matching several kinds is counted once, under the first of that list. Test organizations
themselves (their conversions, their group properties) are dropped by `drop_orgs`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial

REASONS = ("internal_email", "opted_out", "test_organization")
TRUTHY = ("true", "1", "yes", "y", "on")


def _no_persons() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"person_key": pd.Series(dtype="str"), "reason": pd.Series(dtype="str")})


@dataclass(frozen=True)
class Exclusions:
    """Persons (person_key, reason) and organization ids every model leaves out."""

    persons: pd.DataFrame = field(default_factory=_no_persons)
    orgs: frozenset[str] = frozenset()

    def drop_persons(self, frame: pd.DataFrame, column: str = "person_key") -> pd.DataFrame:
        return frame[~frame[column].isin(self.persons["person_key"])]

    def drop_orgs(self, frame: pd.DataFrame, column: str = "org_id") -> pd.DataFrame:
        return frame[~frame[column].isin(self.orgs)] if self.orgs else frame

    def counts(self) -> dict[str, int]:
        """Excluded persons per reason (`excluded_<reason>`) and configured test organizations."""
        by_reason = self.persons["reason"].value_counts()
        out = {f"excluded_{r}": int(by_reason.get(r, 0)) for r in REASONS}
        out["excluded_test_org_ids"] = len(self.orgs)
        return out


def internal_email(emails: pd.Series, domains: Iterable[str]) -> pd.Series:
    """True where the email's domain is one of `domains` or a subdomain of one (case-insensitive)."""
    import re

    domains = [d.lower() for d in domains]
    if not domains:
        return emails.notna() & False
    pattern = "@(?:[^@]*\\.)?(?:" + "|".join(re.escape(d) for d in domains) + ")$"
    return emails.fillna("").str.strip().str.lower().str.contains(pattern, regex=True)


def truthy(values: pd.Series) -> pd.Series:
    """True for true / 1 / yes / y / on in any case (JSON booleans arrive as "true")."""
    return values.fillna("").str.strip().str.lower().isin(TRUTHY)


def find(partial: Partial, keys: pd.DataFrame, as_of: datetime, settings: Settings) -> Exclusions:
    """The exclusions known before `as_of`, for persons stitched as `keys` (identity.stitch)."""
    import pandas as pd

    from plg_bridge.ingest.people import EMAIL, OPT_OUT, latest_profiles
    from plg_bridge.models.identity import person_of

    cfg = settings.models
    t = pd.Timestamp(as_of)
    latest = latest_profiles(partial.profiles, t)
    latest = latest.assign(person_key=person_of(latest["distinct_id"], keys))

    emails = latest[latest["key"] == EMAIL]
    internal = emails.loc[internal_email(emails["value"], cfg.internal_email_domains), "person_key"]
    opt = latest[latest["key"] == OPT_OUT].sort_values(["person_key", "timestamp", "value"], kind="stable")
    opt = opt.drop_duplicates("person_key", keep="last")
    opted_out = opt.loc[truthy(opt["value"]), "person_key"]
    members = partial.memberships[partial.memberships["timestamp"] < t]
    in_test = members[members["org_id"].isin(cfg.test_org_ids)]
    test = person_of(in_test["distinct_id"], keys)

    found = pd.concat(
        [
            pd.DataFrame({"person_key": internal, "reason": REASONS[0]}),
            pd.DataFrame({"person_key": opted_out, "reason": REASONS[1]}),
            pd.DataFrame({"person_key": test, "reason": REASONS[2]}),
        ],
        ignore_index=True,
    ).astype("str")
    found = found.drop_duplicates("person_key").sort_values("person_key").reset_index(drop=True)
    return Exclusions(persons=found, orgs=frozenset(cfg.test_org_ids))
