"""The `properties` text of generated events: JSON fragments spliced by index, compact or posthog-js-sized.

Compact payloads carry what the models read plus a little device context (the project's historic
generator). Realistic payloads add what posthog-js sends with every event, about 1-2 KB: browser and
OS details with the raw user agent, screen and viewport, geo-IP (`$geoip_*`), session / window /
pageview ids, `$insert_id` and `$time`, feature flags, `$current_url` / `$referrer` on events that
lack them, autocapture's `$elements_chain` on clicks, and person updates in `$set` / `$set_once`.
None of the added keys is one the models read, so both sizes give the same scores.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

PAYLOADS = ("compact", "realistic")


def json_text(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def frag(obj: dict[str, Any], lead: str = ",") -> str:
    """Members of a JSON object as text (properly escaped), to be spliced into a bigger object."""
    return lead + json_text(obj)[1:-1] if obj else ""


# -- posthog-js-sized payloads ---------------------------------------------------------------------

# (browser, version, OS version, user agent) for each catalog.BROWSERS entry, in its order
AGENTS = [
    ("121.0.6167.85", "14.2.1", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36"),
    ("121.0.6167.140", "10.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36"),
    ("17.2.1", "14.2.1", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2.1 Safari/605.1.15"),
    ("122.0", "", "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0"),
    ("121.0.2277.83", "10.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36 Edg/121.0.0.0"),
    ("17.2", "17.2.1", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"),
    ("121.0.6167.101", "14.0.0", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.6167.101 Mobile Safari/537.36"),
]  # fmt: skip
# city, subdivision (code, name), country (code, name), continent (code, name), postal code, lat, lon, zone, language
GEOS = [
    ("Berlin", "BE", "Land Berlin", "DE", "Germany", "EU", "Europe", "10115", 52.5196, 13.4069, "Europe/Berlin", "de-DE"),
    ("London", "ENG", "England", "GB", "United Kingdom", "EU", "Europe", "EC1A", 51.5164, -0.093, "Europe/London", "en-GB"),
    ("Paris", "IDF", "Île-de-France", "FR", "France", "EU", "Europe", "75001", 48.8566, 2.3522, "Europe/Paris", "fr-FR"),
    ("São Paulo", "SP", "São Paulo", "BR", "Brazil", "SA", "South America", "01000-000", -23.5475, -46.6361, "America/Sao_Paulo", "pt-BR"),
    ("New York", "NY", "New York", "US", "United States", "NA", "North America", "10001", 40.7128, -74.006, "America/New_York", "en-US"),
    ("San Francisco", "CA", "California", "US", "United States", "NA", "North America", "94107", 37.7697, -122.3933, "America/Los_Angeles", "en-US"),
    ("Toronto", "ON", "Ontario", "CA", "Canada", "NA", "North America", "M5H", 43.6532, -79.3832, "America/Toronto", "en-CA"),
    ("Bengaluru", "KA", "Karnataka", "IN", "India", "AS", "Asia", "560001", 12.9716, 77.5946, "Asia/Kolkata", "en-IN"),
    ("Tokyo", "13", "Tokyo", "JP", "Japan", "AS", "Asia", "100-0001", 35.6895, 139.6917, "Asia/Tokyo", "ja-JP"),
    ("Sydney", "NSW", "New South Wales", "AU", "Australia", "OC", "Oceania", "2000", -33.8688, 151.2093, "Australia/Sydney", "en-AU"),
    ("Zürich", "ZH", "Zurich", "CH", "Switzerland", "EU", "Europe", "8001", 47.3769, 8.5417, "Europe/Zurich", "de-CH"),
    ("Lagos", "LA", "Lagos", "NG", "Nigeria", "AF", "Africa", "100001", 6.4541, 3.3947, "Africa/Lagos", "en-NG"),
]  # fmt: skip
SCREENS = [(1920, 1080, 1903, 969), (1440, 900, 1440, 789), (2560, 1440, 2543, 1297), (390, 844, 390, 664)]
FLAGS = ["new-onboarding", "usage-based-pricing", "ai-assistant", "sql-editor-v2"]
CHAINS = [
    'button.btn.btn-primary.LemonButton:attr__class="btn btn-primary LemonButton"attr__data-attr="save-dashboard"'
    'attr__type="button"nth-child="2"nth-of-type="1"text="Save";div.flex.gap-2:attr__class="flex gap-2"nth-child="3"'
    'nth-of-type="3";div.DashboardHeader:attr__class="DashboardHeader"nth-child="1"nth-of-type="1";main.main-app-content'
    ':attr__class="main-app-content"nth-child="2"nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'a.Link:attr__class="Link"attr__href="/reports/new"href="/reports/new"nth-child="1"nth-of-type="1"text="New report";'
    'li.SideBar__item:attr__class="SideBar__item"nth-child="4"nth-of-type="4";ul.SideBar__list:attr__class="SideBar__list"'
    'nth-child="1"nth-of-type="1";nav.SideBar:attr__class="SideBar"attr__aria-label="Main"nth-child="1"nth-of-type="1"',
    'span.LemonButton__content:attr__class="LemonButton__content"nth-child="1"nth-of-type="1"text="Run query";'
    'button.LemonButton.LemonButton--primary:attr__class="LemonButton LemonButton--primary"attr__data-attr="run-query"'
    'nth-child="3"nth-of-type="2";div.QueryEditor__toolbar:attr__class="QueryEditor__toolbar"nth-child="2"nth-of-type="1"',
]  # fmt: skip
CLICK_SHARE = 0.5  # of product events (core, creation): autocaptured clicks carrying `$elements_chain`
TOKEN = "phc_3xAmpl3Pr0j3ctT0k3nF0rG3n3rat3dEv3nts0000"


class Realistic:
    """Lookup tables of posthog-js context and the per-row fragment built from them.

    Device and person context come per (browser, place, screen) combination plus a per-entity
    `$device_id`, so memory does not grow with the number of people; ids that change per event
    (`$insert_id`, `$pageview_id`, ...) are drawn per row. `rng` is the payload's own stream.
    """

    def __init__(
        self, rng: np.random.Generator, browser: np.ndarray, site: str, app: str, pages: list[str]
    ) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from plg_bridge.synthetic.catalog import BROWSERS
        from plg_bridge.synthetic.ids import uuid4_bytes, uuid_strings

        n = len(browser)
        self.app, self.pages = app, pages
        place = rng.integers(len(GEOS), size=n)
        screen = rng.choice(len(SCREENS), size=n, p=[0.45, 0.3, 0.15, 0.1])
        screen = np.where(
            np.isin(browser, [5, 6]), 3, np.where(screen == 3, 0, screen)
        )  # phones: phone screens
        self.combo = ((browser * len(GEOS) + place) * len(SCREENS) + screen).astype(np.int64)
        context, person = [], []
        for b, (name, os_name, device) in enumerate(BROWSERS):
            version, os_version, agent = AGENTS[b]
            for city, sub_code, _sub_name, cc, country, cont, continent, postal, lat, lon, zone, lang in GEOS:
                for width, height, vw, vh in SCREENS:
                    geo = {"$geoip_city_name": city, "$geoip_subdivision_1_code": sub_code,
                           "$geoip_country_code": cc,
                           "$geoip_country_name": country, "$geoip_continent_code": cont,
                           "$geoip_continent_name": continent, "$geoip_postal_code": postal,
                           "$geoip_latitude": lat, "$geoip_longitude": lon, "$geoip_time_zone": zone}  # fmt: skip
                    flags = FLAGS[: 1 + b % 2]
                    context.append(frag({
                        "$raw_user_agent": agent, "$browser_version": float(version.split(".")[0]),
                        "$os_version": os_version, "$screen_height": height, "$screen_width": width,
                        "$viewport_height": vh, "$viewport_width": vw, "$browser_language": lang,
                        "$timezone": zone, "token": TOKEN, "$process_person_profile": True,
                        "$active_feature_flags": flags,
                        **{f"$feature/{f}": (True if i % 2 == 0 else "test") for i, f in enumerate(flags)},
                        **geo,
                    }))  # fmt: skip
                    person.append(frag({
                        "$set": {"$os": os_name, "$browser": name, "$device_type": device,
                                 "$browser_version": float(version.split(".")[0]), "$geoip_city_name": city},
                        "$set_once": {"$initial_os": os_name, "$initial_browser": name,
                                      "$initial_device_type": device, "$initial_geoip_city_name": city,
                                      "$initial_pathname": "/", "$initial_host": site},
                    }))  # fmt: skip
        self.context = pa.array(context, pa.string())
        self.person = pa.array(person, pa.string())
        device_ids = uuid_strings(uuid4_bytes(rng, n))
        self.device_id = pc.binary_join_element_wise(',"$device_id":"', device_ids, '"', "")
        self.url = pa.array(
            [frag({"$current_url": f"https://{app}{p}", "$host": app, "$pathname": p, "$referrer": "$direct"})
             for p in pages],
            pa.string(),
        )  # fmt: skip
        self.chains = pa.array(CHAINS, pa.string())
        self.clicks = pa.array(
            [frag({"$event_type": "click", "$ce_version": 1, "$elements_chain": c}) for c in CHAINS],
            pa.string(),
        )

    def draw(self, rng: np.random.Generator, t: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row choices for a slice (its own stream, so a row's re-delivered copy shows the same)."""
        import numpy as np

        n = len(t)
        return {
            "page": rng.integers(len(self.pages), size=n),
            "chain": rng.integers(len(CHAINS), size=n),
            "click": rng.random(n) < CLICK_SHARE,
            "insert": np.frombuffer(rng.bytes(8 * n), dtype=np.uint8).reshape(n, 8).copy(),
            "pageview": np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy(),
        }

    def fragment(  # noqa: PLR0917 - the row's coordinates
        self,
        drawn: dict[str, np.ndarray],
        rows: np.ndarray,
        t: np.ndarray,
        ent: np.ndarray,
        has_url: np.ndarray,
        has_person: np.ndarray,
        clicks: np.ndarray,
    ) -> pa.Array:
        """The posthog-js context of `rows` (indexes into the slice), as members of the object."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from plg_bridge.synthetic.ids import strings_from_fixed, uuid_strings

        def text(values: np.ndarray) -> pa.Array:
            return pc.cast(pa.array(values), pa.string())

        ts = t[rows]
        hexdig = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
        raw = drawn["insert"][rows]
        insert = np.empty((len(rows), 16), dtype=np.uint8)
        insert[:, 0::2], insert[:, 1::2] = hexdig[raw >> 4], hexdig[raw & 0x0F]
        view = _uuid7(ts // 1000, drawn["pageview"][rows])
        # the session: one per entity and day (its id starts at the day's first millisecond)
        day = ts // 86_400_000_000
        key = (ent[rows].astype(np.uint64) << np.uint64(24)) ^ day.astype(np.uint64)
        tail = np.stack(
            [
                ((key * np.uint64(0x9E3779B97F4A7C15 + 2 * i)) >> np.uint64(8 * (i % 8))) & np.uint64(0xFF)
                for i in range(16)
            ],
            axis=1,
        ).astype(np.uint8)
        session = _uuid7(day * 86_400_000, tail)
        window = session.copy()
        window[:, 15] ^= 0x5A
        seconds, millis = ts // 1_000_000, (ts // 1000) % 1000
        empty = pa.array([""], pa.string())
        blank = pa.array(np.zeros(len(rows), dtype=np.int64))
        return pc.binary_join_element_wise(
            self.context.take(pa.array(self.combo[ent[rows]])),
            self.device_id.take(pa.array(ent[rows])),
            ',"$insert_id":"',
            strings_from_fixed(insert),
            '","$time":',
            text(seconds),
            ".",
            pc.utf8_lpad(text(millis), 3, "0"),
            ',"$session_id":"',
            uuid_strings(session),
            '","$window_id":"',
            uuid_strings(window),
            '","$pageview_id":"',
            uuid_strings(view),
            '"',
            pc.if_else(
                pa.array(has_url[rows]), empty.take(blank), self.url.take(pa.array(drawn["page"][rows]))
            ),
            pc.if_else(
                pa.array(has_person[rows]),
                self.person.take(pa.array(self.combo[ent[rows]])),
                empty.take(blank),
            ),
            pc.if_else(
                pa.array(clicks[rows]), self.clicks.take(pa.array(drawn["chain"][rows])), empty.take(blank)
            ),
            "",
        )


def _uuid7(ms: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """(n, 16) UUIDv7 bytes: 48-bit unix milliseconds, then `tail`'s bytes (version / variant set)."""
    import numpy as np

    raw = np.array(tail, dtype=np.uint8, copy=True)
    ms = ms.astype(np.uint64)
    for i, shift in enumerate(range(40, -8, -8)):
        raw[:, i] = ((ms >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw
