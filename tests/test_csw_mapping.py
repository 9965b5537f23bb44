"""ISO 19139 records mapped to STAC Collections (``lab._adapters._csw.iso_collection``).

The values expected are read by hand in the XML files: the three dataset records written for
the tests (``tests/data/csw/``) and real records of other producers
(``tests/data/csw/real/``, see its SOURCES.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
import pytest
from lxml import etree
from owslib.iso import MD_Metadata
from stac_schemas import validate

from lab import CentresFileError
from lab._adapters._csw import NOT_ITEMS, THEMES_SCHEMA, iso_collection
from lab._centres import CatalogSpec
from lab._query import SearchQuery

DATA = Path(__file__).parent / "data" / "csw"
UTC = dt.UTC


def mapped(path: Path) -> pystac.Collection:
    """The record's collection, valid against the STAC 1.1.0 and themes schemas (offline)."""
    collection = iso_collection(MD_Metadata(etree.parse(str(path))))
    document = collection.to_dict(include_self_link=False)
    assert validate(document) == []
    return pystac.Collection.from_dict(document)  # survives a JSON round trip


def links(collection: pystac.Collection) -> dict[str, tuple[str, str | None, str | None]]:
    return {
        str(link.href): (link.rel, link.media_type, link.extra_fields.get("earthlab:protocol"))
        for link in collection.links
        if link.rel not in ("root", "self")
    }


def test_ocean_colour_record() -> None:
    c = mapped(DATA / "odatis-med-chl-l4.xml")
    assert c.id == "odatis-med-chl-l4-daily"
    assert c.title == (
        "Mediterranean Sea ocean colour: chlorophyll-a concentration, L4 daily gap-free, 1 km"
    )
    assert c.description.startswith("Daily, gap-free (interpolated) surface chlorophyll-a")
    assert c.description.endswith("distributed through the ODATIS ocean data hub.")
    assert c.extent.spatial.bboxes == [[-6.0, 30.0, 36.5, 46.0]]
    [[start, end]] = c.extent.temporal.intervals
    assert start == dt.datetime(1997, 9, 16, tzinfo=UTC)
    assert end == dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)  # a date: its day
    assert c.keywords == [
        "Oceanographic geographical features",
        "EARTH SCIENCE > OCEANS > OCEAN OPTICS > CHLOROPHYLL",
        "EARTH SCIENCE > OCEANS > OCEAN OPTICS > OCEAN COLOR",
        "chlorophyll-a",
        "ocean colour",
        "Mediterranean Sea",
        "oceans",  # the topic category
    ]
    assert c.extra_fields["earthlab:keyword_thesauri"] == {
        "GEMET - INSPIRE themes, version 1.0": ["Oceanographic geographical features"],
        "NASA/GCMD Earth Science Keywords": [
            "EARTH SCIENCE > OCEANS > OCEAN OPTICS > CHLOROPHYLL",
            "EARTH SCIENCE > OCEANS > OCEAN OPTICS > OCEAN COLOR",
        ],
    }
    assert THEMES_SCHEMA in c.stac_extensions
    assert c.extra_fields["themes"] == [
        {
            "scheme": "GEMET - INSPIRE themes, version 1.0",
            "concepts": [
                {
                    "id": "Oceanographic geographical features",
                    "url": "http://inspire.ec.europa.eu/theme/of",
                }
            ],
        },
        {
            "scheme": "https://gcmd.earthdata.nasa.gov/kms/concepts/concept_scheme/sciencekeywords",
            "concepts": [
                {"id": "EARTH SCIENCE > OCEANS > OCEAN OPTICS > CHLOROPHYLL"},
                {"id": "EARTH SCIENCE > OCEANS > OCEAN OPTICS > OCEAN COLOR"},
            ],
        },
    ]
    assert c.license == "CC-BY-4.0"
    assert c.extra_fields["earthlab:constraints"] == [
        "Cite the product and ODATIS in any publication.",
        "No limitations to public access",
        "Creative Commons Attribution 4.0 International (CC BY 4.0)",
    ]
    assert [(p.name, p.roles, p.description) for p in c.providers or []] == [
        (
            "ACRI-ST",
            ["producer"],
            "ISO 19115 role: originator (Ocean colour team, oceancolour@example.org)",
        ),
        (
            "ODATIS - Pôle de données océan",
            ["host"],
            "ISO 19115 role: distributor (odatis-contact@example.org)",
        ),
    ]
    assert links(c) == {
        "https://creativecommons.org/licenses/by/4.0/": ("license", None, None),
        "https://odatis.example.org/wms/oceancolour": (
            "wms",
            "application/vnd.ogc.wms_xml",
            "OGC:WMS",
        ),
        "https://odatis.example.org/thredds/fileServer/oceancolour/med-chl-l4-daily/": (
            "enclosure",
            None,
            "WWW:DOWNLOAD-1.0-http--download",
        ),
        "https://odatis.example.org/thredds/dodsC/oceancolour/med-chl-l4-daily": (
            "service",
            None,
            "OPeNDAP:OPeNDAP",
        ),
        "https://odatis.example.org/products/med-chl-l4": ("about", "text/html", "WWW:LINK"),
    }
    wms = next(link for link in c.links if link.rel == "wms")
    assert wms.title == "Chlorophyll-a map (WMS)"
    assert wms.extra_fields["wms:layers"] == ["CHL"]


def test_atmospheric_record_licence_ouverte_and_stac_link() -> None:
    c = mapped(DATA / "aeris-parasol-aod-ocean.xml")
    assert c.id == "aeris-parasol-aod-ocean-l2"
    assert c.title == "PARASOL/POLDER-3 aerosol optical thickness over ocean, level 2"
    assert c.extent.spatial.bboxes == [[-180.0, -90.0, 180.0, 90.0]]
    [[start, end]] = c.extent.temporal.intervals
    assert (start, end) == (
        dt.datetime(2005, 3, 4, tzinfo=UTC),
        dt.datetime(2013, 10, 10, 23, 59, 59, 999999, tzinfo=UTC),
    )
    assert c.license == "etalab-2.0"
    assert [link.href for link in c.links if link.rel == "license"] == [
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"
    ]
    assert (
        "Registration on the AERIS/ICARE portal is required to download the files."
        in c.extra_fields["earthlab:constraints"]
    )
    assert links(c)["https://aeris.example.org/stac/collections/parasol-aod-ocean-l2"] == (
        "alternate",
        "application/json",
        "OGC:STAC",
    )
    assert links(c)["ftp://ftp.aeris.example.org/PARASOL/L2/AOT-OC/"][0] == "enclosure"
    assert [p.name for p in c.providers or []] == [
        "ICARE Data and Services Centre",
        "AERIS - Pôle de données atmosphère",
    ]


def test_in_situ_network_record_has_an_open_end_and_a_wfs() -> None:
    c = mapped(DATA / "somlit-coastal-hydrology.xml")
    assert c.id == "somlit-coastal-hydrology"
    assert c.extent.spatial.bboxes == [[-4.6, 41.3, 9.4, 51.1]]
    [[start, end]] = c.extent.temporal.intervals
    assert start == dt.datetime(1997, 1, 1, tzinfo=UTC)
    assert end is None  # indeterminatePosition="now"
    assert links(c)["https://odatis.example.org/geoserver/somlit/ows"] == (
        "service",
        "application/xml",
        "OGC:WFS",
    )
    assert links(c)["https://odatis.example.org/somlit/download/somlit-hydro.csv"][0] == (
        "enclosure"
    )
    assert links(c)["https://hubeau.example.org/api/v2/qualite_rivieres/station_pc"] == (
        "about",
        "text/html",
        "WWW:LINK-1.0-http--link",
    )
    assert c.license == "CC-BY-4.0"


def test_real_record_ipma_air_temperature() -> None:
    """OWSLib's test record of IPMA (Portugal): no licence named, no temporal extent."""
    c = mapped(DATA / "real" / "17bd184a-7e7d-4f81-95a5-041449a7212b_iso.xml")
    assert c.id == "17bd184a-7e7d-4f81-95a5-041449a7212b"
    assert c.title == "Air temperature"
    assert c.extent.spatial.bboxes == [[-9.5, 36.96, -6.19, 42.15]]
    assert c.extent.temporal.intervals == [[None, None]]
    assert c.license == "other"
    assert c.extra_fields["earthlab:constraints"] == ["Conditions unknown", "no limitation"]
    assert c.extra_fields["earthlab:keyword_thesauri"] == {
        "GEMET - INSPIRE themes, version 1.0": ["Atmospheric conditions"]
    }
    assert [(p.name, p.roles) for p in c.providers or []] == [("IPMA", ["producer"])]
    assert links(c) == {"http://ipma.pt": ("related", None, None)}


def test_real_record_marine_institute_anchors_and_datetimes() -> None:
    """The Marine Institute (Ireland) record: gmx:Anchor keywords, a datetime period."""
    c = mapped(DATA / "real" / "iso_keywords_anchor.xml")
    assert c.id == "ie.marine.data:dataset.1135"
    assert c.title == "CE0911 Climate Change Survey"
    assert c.extent.spatial.bboxes == [[-15.148822, 49.7991699, -8.254568548, 54.6287598]]
    assert c.extent.temporal.intervals == [
        [dt.datetime(2009, 6, 14, tzinfo=UTC), dt.datetime(2009, 6, 22, 23, 59, 59, tzinfo=UTC)]
    ]
    thesauri = c.extra_fields["earthlab:keyword_thesauri"]
    assert thesauri["AtlantOS Essential Variables"] == [
        "Atmospheric pressure",
        "Air temperature",
        "Salinity",
        "Temperature",
        "Wind direction",
        "Wind speed",
    ]
    assert [(p.name, p.roles, p.url) for p in c.providers or []] == [
        ("Marine Institute", ["producer"], "http://www.marine.ie")
    ]
    assert {link.href for link in c.links if link.rel == "about"} == {
        "http://www.marine.ie",
        "http://www.seadatanet.org/",
        "http://www.ifremer.fr/brest/",
    }


def test_real_record_without_extent_keeps_the_whole_earth() -> None:
    """A Canadian record (ISO-8859-1) with no geographic extent and no contact."""
    c = mapped(DATA / "real" / "9250AA67-F3AC-6C12-0CB9-0662231AA181_iso.xml")
    assert c.id == "3f342f64-9348-11df-ba6a-0014c2c00eab"
    assert c.title == "ALLSPECIES"
    assert c.extent.spatial.bboxes == [[-180.0, -90.0, 180.0, 90.0]]
    assert "water quality" in (c.keywords or [])
    assert c.providers is None


def test_csw_href_must_be_a_url() -> None:
    with pytest.raises(CentresFileError, match="http\\(s\\) URL of the CSW endpoint"):
        CatalogSpec(kind="csw", href="/tmp/records")
    assert CatalogSpec(kind="csw", href="http://127.0.0.1:1/csw").kind == "csw"


def test_a_csw_adapter_has_no_items() -> None:
    from lab._adapters._csw import CswAdapter
    from lab._centres import Centre

    centre = Centre("sextant", "Sextant", CatalogSpec(kind="csw", href="http://127.0.0.1:1/csw"))
    answer = CswAdapter(centre).search(SearchQuery())
    assert (answer.items, answer.matched, answer.note) == ([], 0, NOT_ITEMS)


def test_a_keyword_block_mixing_text_and_anchors_keeps_both(tmp_path: Path) -> None:
    """OWSLib alone keeps only the text keywords of such a block; the mapping keeps all."""
    text = (DATA / "odatis-med-chl-l4.xml").read_text(encoding="utf-8")
    free = "<gco:CharacterString>Mediterranean Sea</gco:CharacterString>\n          </gmd:keyword>"
    assert text.count(free) == 1
    anchor = (
        '<gmd:keyword><gmx:Anchor xlink:href="http://vocab.nerc.ac.uk/collection/C19/current/'
        '1_7/">Mediterranean Sea - Western Basin</gmx:Anchor></gmd:keyword>'
    )
    mixed = tmp_path / "mixed.xml"
    mixed.write_text(text.replace(free, free + anchor), encoding="utf-8")
    c = mapped(mixed)
    assert c.keywords is not None
    assert c.keywords[-3:] == ["Mediterranean Sea", "Mediterranean Sea - Western Basin", "oceans"]
    assert "chlorophyll-a" in c.keywords
