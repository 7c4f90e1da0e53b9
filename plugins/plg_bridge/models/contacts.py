"""Person records for the CRMs: who they are (email), where they came from (first touch), and
how fast they got value (signup, Aha moment, hours between).

One row per stitched person with a known email (CRMs key contacts by email); excluded persons
and members of test organizations are left out, as in every model. A person's email is their
latest `email` property as of T, when it has an address's shape (`EMAIL_SHAPE`): HubSpot keys
contacts by valid emails only and refuses `bob@localhost` or `a b@x.io` on every run.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models import exclusions

# local@domain.tld: no spaces, one @, a dot-separated domain with non-empty labels, at most 254 characters
EMAIL_SHAPE = r"^(?=.{3,254}$)[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$"

COLUMNS = {
    "email": "str",
    "person_key": "str",
    "org_id": "object",
    "first_touch_source": "object",
    "first_touch_medium": "object",
    "first_touch_campaign": "object",
    "first_touch_channel": "object",
    "signup_at": "datetime64[us, UTC]",
    "aha_reached_at": "datetime64[us, UTC]",
    "hours_to_aha": "float64",
}


def contacts(
    partial: Partial,
    as_of: datetime,
    settings: Settings,
    *,
    keys: pd.DataFrame | None = None,
    excluded: exclusions.Exclusions | None = None,
) -> pd.DataFrame:
    """Contacts as of T (columns COLUMNS), sorted by email.

    `keys` / `excluded`: the run's identity.stitch and exclusions.find, when already computed.
    """
    import pandas as pd

    from plg_bridge.ingest.people import EMAIL, latest_profiles
    from plg_bridge.models import exclusions
    from plg_bridge.models.activation import person_firsts
    from plg_bridge.models.attribution import first_touch
    from plg_bridge.models.identity import person_of, persons

    t = pd.Timestamp(as_of)
    if keys is None:
        keys = persons(partial, as_of, settings.exports.placeholder_ids)
    if excluded is None:
        excluded = exclusions.find(partial, keys, as_of, settings)

    emails = latest_profiles(partial.profiles, t)
    emails = emails[emails["key"] == EMAIL]
    emails = emails.assign(email=emails["value"].fillna("").str.strip().str.lower())
    emails = emails[emails["email"].str.match(EMAIL_SHAPE)]
    emails = emails.assign(person_key=person_of(emails["distinct_id"], keys))
    emails = emails.sort_values(["person_key", "timestamp"], kind="stable").drop_duplicates(
        "person_key", keep="last"
    )
    emails = emails.drop_duplicates("email", keep="last")  # one person per email, as the CRM sees it
    people = excluded.drop_persons(emails[["person_key", "email"]])

    touch = first_touch(partial.touches, keys, as_of, settings.models.paid_mediums).set_index("person_key")
    events = (settings.models.signup_event, settings.signals.aha_event)
    firsts = person_firsts(partial.firsts[partial.firsts["event"].isin(events)], keys, as_of)
    members = partial.memberships[partial.memberships["timestamp"] < t]
    members = members.assign(person_key=person_of(members["distinct_id"], keys))
    org = members.sort_values(["timestamp", "org_id"], kind="stable").drop_duplicates("person_key")
    org = excluded.drop_orgs(org).set_index("person_key")["org_id"]

    def first(event: str) -> pd.Series:
        when = firsts[firsts["event"] == event].set_index("person_key")["timestamp"]
        if when.empty or people.empty:
            return pd.Series(pd.NaT, index=people.index, dtype="datetime64[us, UTC]")
        return people["person_key"].map(when).astype("datetime64[us, UTC]")

    signup, aha = first(events[0]), first(events[1])
    out = pd.DataFrame(
        {
            "email": people["email"],
            "person_key": people["person_key"],
            "org_id": people["person_key"].map(org),
            "first_touch_source": people["person_key"].map(touch["source"]),
            "first_touch_medium": people["person_key"].map(touch["medium"]),
            "first_touch_campaign": people["person_key"].map(touch["campaign"]),
            "first_touch_channel": people["person_key"].map(touch["channel"]),
            "signup_at": signup,
            "aha_reached_at": aha,
            "hours_to_aha": (aha - signup).dt.total_seconds() / 3600,
        }
    )
    out["hours_to_aha"] = out["hours_to_aha"].where(out["hours_to_aha"] >= 0)
    out = out.astype(object).where(out.notna(), None).astype(COLUMNS)
    return out.sort_values("email").reset_index(drop=True)
