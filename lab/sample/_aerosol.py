"""The ``aeris`` daily gridded aerosol product of the sample (a third pole, atmosphere).

One CF NetCDF-4 file a day on a regular 0.05° latitude/longitude grid over the Gulf of Lion
(2.5–5.0° E, 42.5–44.5° N: 40 × 50 cells, about 5.6 km × 4.0 km, not square in metres),
aerosol optical depth at 550 nm (``aod550``, standard name
``atmosphere_optical_thickness_due_to_ambient_aerosol_particles``), int16-packed, daily mean
time-stamped 12:00 UTC, the same days as the ocean-colour product. Cloudy cells (a smooth
random field per day) are missing; there is no land mask (AOD is retrieved over land too).

The field is analytic, so that a test recomputes it from ``truth/generator.json``::

    aod(t, lon, lat) = 0.10 + 0.04 sin(2 pi (t - 80) / 365.25)
                       + sum over events e of a_e exp(-((t - t_e) / w_e)^2 / 2)
                                            exp(-((lon - lon_e)^2 + (lat - lat_e)^2) / (2 s_e^2))

with ``t`` in days since 2022-01-01T00:00Z (the truth model's clock), three dust or smoke events
drawn from the product's own random stream (their ``a``, ``t``, ``w``, ``lon``, ``lat``, ``s``
are in the record).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from lab.sample import _ocean
from lab.sample._fields import days

__all__ = ["CENTRE", "COLLECTION", "RESOLUTION_DEG", "aod", "axes", "write_product"]

CENTRE = "aeris"
COLLECTION = "aerosol-optical-depth-daily"
RESOLUTION_DEG = 0.05
BOUNDS = (2.5, 42.5, 5.0, 44.5)  # west, south, east, north
NOON = timedelta(hours=12)
PACKING = {
    "aod550": (
        0.0001,
        1.0,
        "1",
        "aerosol optical depth at 550 nm",
        "atmosphere_optical_thickness_due_to_ambient_aerosol_particles",
    )
}
N_EVENTS = 3


def axes() -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre latitudes (north to south) and longitudes of the product's grid."""
    west, south, east, north = BOUNDS
    step = RESOLUTION_DEG
    lat = np.round(north - (np.arange(round((north - south) / step)) + 0.5) * step, 6)
    lon = np.round(west + (np.arange(round((east - west) / step)) + 0.5) * step, 6)
    return lat, lon


def aod(
    t: float | np.ndarray, lon: np.ndarray, lat: np.ndarray, events: Sequence[dict[str, float]]
) -> np.ndarray:
    """The product's truth: AOD at 550 nm at days ``t``, ``lon``, ``lat`` (see the module)."""
    value = 0.10 + 0.04 * np.sin(2 * np.pi * (np.asarray(t) - 80.0) / 365.25)
    field = np.zeros(np.broadcast(lon, lat).shape) + value
    for e in events:
        when = np.exp(-0.5 * ((np.asarray(t) - e["t"]) / e["w"]) ** 2)
        where = np.exp(-((lon - e["lon"]) ** 2 + (lat - e["lat"]) ** 2) / (2 * e["s"] ** 2))
        field = field + e["a"] * when * where
    return field


def _events(rng: np.random.Generator, first: float, last: float) -> list[dict[str, float]]:
    west, south, east, north = BOUNDS
    return [
        {
            "a": round(float(rng.uniform(0.2, 0.6)), 4),
            "t": round(float(rng.uniform(first, last)), 4),
            "w": round(float(rng.uniform(1.0, 3.0)), 4),
            "lon": round(float(rng.uniform(west, east)), 4),
            "lat": round(float(rng.uniform(south, north)), 4),
            "s": round(float(rng.uniform(0.3, 0.8)), 4),
        }
        for _ in range(N_EVENTS)
    ]


def write_product(
    root: Path, dates: Sequence[datetime], rng: np.random.Generator
) -> tuple[list[pystac.Item], dict[str, pystac.Asset], dict[str, Any]]:
    """Write one NetCDF file a day under ``root/<collection>/<item id>/`` and the references.

    Returns the items (asset hrefs absolute), the collection's assets (the references) and the
    generator's record (the events, to recompute the truth).
    """
    lat, lon = axes()
    lons, lats = np.meshgrid(lon, lat)
    x, y = _ocean.cell_utm(lat, lon)
    event_rng, cloud_rng = rng.spawn(2)
    stamps = [datetime(d.year, d.month, d.day, tzinfo=UTC) + NOON for d in dates]
    events = _events(event_rng, days(stamps[0]), days(stamps[-1]))
    west, south, east, north = BOUNDS
    items, covers = [], []
    for when, day_rng in zip(stamps, cloud_rng.spawn(len(stamps)), strict=True):
        clouds = _ocean.cloud_mask(day_rng, x, y, scale=40.0)
        values = np.where(clouds, np.nan, aod(days(when), lons, lats, events))
        item_id = f"AOD_GOL_{when:%Y%m%d}"
        path = root / COLLECTION / item_id / f"{item_id}.nc"
        _ocean.write_day(
            path,
            when,
            lat,
            lon,
            {"aod550": values},
            packing=PACKING,
            title="Daily aerosol optical depth over the Gulf of Lion (synthetic sample)",
        )
        covers.append(float(clouds.mean()))
        items.append(
            _ocean.day_item(
                item_id,
                when,
                path,
                (west, south, east, north),
                covers[-1],
                collection=COLLECTION,
                title="aerosol optical depth at 550 nm (CF NetCDF-4)",
            )
        )
    references = _ocean.write_references(
        root / COLLECTION, [Path(i.assets["data"].href) for i in items]
    )
    record = {
        "collection": COLLECTION,
        "references": references.relative_to(root).as_posix(),
        "resolution_deg": RESOLUTION_DEG,
        "bounds": list(BOUNDS),
        "shape": [len(lat), len(lon)],
        "days": len(stamps),
        "time_of_day": "12:00 UTC",
        "formula": (
            "aod = 0.10 + 0.04 sin(2 pi (t - 80) / 365.25) + sum_e a exp(-((t - t_e)/w)^2 / 2)"
            " exp(-((lon - lon_e)^2 + (lat - lat_e)^2) / (2 s^2)), t in days since 2022-01-01T00:00Z"
        ),
        "events": events,
        "cloud_cover": [round(c, 4) for c in covers],
        "packing": {k: {"scale_factor": v[0], "add_offset": v[1]} for k, v in PACKING.items()},
    }
    return items, {"references": _ocean.references_asset(references)}, record
