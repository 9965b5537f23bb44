"""A real OGC CSW server for tests: pycsw on loopback, loaded with ISO 19139 records.

pycsw runs from its own virtual environment, ``.venv-pycsw`` (``make pycsw-venv``, which
``make test`` runs: its pins, in ``tests/pycsw-constraints.txt``, conflict with the lab's). The
server gets a configuration file with a SQLite repository, the records are loaded with pycsw's
own admin command (``pycsw-admin.py -c setup_db``, then ``-c load_records``) and it answers on
``127.0.0.1`` through the WSGI reference server (:data:`SERVE`).

Records: the hand-written dataset records of ``tests/data/csw/`` (an ocean-colour product, an
atmospheric product, an in-situ network) and, with :func:`sample_records`, one record per
collection of the sample federation, written from the collection's JSON (same id, title, extent).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lab._centres import read_centres_file
from lab_server.deploy._procs import Proc, free_port, http_ready, start, stop, wait_until

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "tests" / "data" / "csw"
"""The hand-written ISO 19139 dataset records."""
PYCSW_VENV = ROOT / ".venv-pycsw"
"""pycsw's virtual environment (``make pycsw-venv``)."""
IP = "127.0.0.1"

# Run by pycsw's interpreter: its WSGI application on loopback only (pycsw's own __main__ binds
# every interface), one thread per request.
SERVE = """
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from pycsw.wsgi import application

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

make_server(sys.argv[1], int(sys.argv[2]), application, server_class=Server).serve_forever()
"""


@dataclass
class CswServer:
    """A running pycsw."""

    url: str
    """The CSW endpoint (``http://127.0.0.1:PORT/csw``)."""
    proc: Proc
    """The server process."""
    directory: Path
    """Its configuration, database and log."""

    def stop(self) -> None:
        """Stop the server (as if the catalogue went down)."""
        stop(self.proc, timeout=5)


def pycsw_python() -> Path:
    """The interpreter of pycsw's environment; fails with the command that makes it."""
    python = PYCSW_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(
            f"pycsw's virtual environment {PYCSW_VENV} is missing: run `make pycsw-venv` "
            "(make test does it)"
        )
    return python


@contextlib.contextmanager
def csw_server(directory: Path, *record_dirs: Path, timeout: float = 60.0) -> Iterator[CswServer]:
    """Serve the ISO 19139 records of ``record_dirs`` from pycsw on loopback.

    Parameters
    ----------
    directory
        Where the configuration, SQLite repository and log go.
    record_dirs
        Directories of ISO 19139 XML records, loaded with ``pycsw-admin.py -c load_records``
        (their own files, not subdirectories: ``tests/data/csw/real/`` is for the mapping tests).
    timeout
        Seconds the server may take to answer its first GetCapabilities.
    """
    import subprocess

    python = pycsw_python()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{IP}:{port}/csw"
    config = directory / "pycsw.cfg"
    config.write_text(
        _config(url, directory / "records.db", directory / "pycsw-server.log"), encoding="utf-8"
    )
    admin = [str(python), str(python.parent / "pycsw-admin.py"), "-f", str(config)]
    env = {"PATH": str(python.parent), "PYCSW_CONFIG": str(config)}
    log = directory / "pycsw.log"
    steps = [[*admin, "-c", "setup_db"]]
    steps += [[*admin, "-c", "load_records", "-p", str(records)] for records in record_dirs]
    for step in steps:
        with open(log, "ab") as out:
            done = subprocess.run(step, stdout=out, stderr=out, env=env, check=False)
        if done.returncode:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(step[2:])} failed ({done.returncode}); {log}:\n{tail}")
    command = [str(python), "-c", SERVE, IP, str(port)]
    proc = start("pycsw", command, log, env, directory)
    try:
        capabilities = f"{url}?service=CSW&version=2.0.2&request=GetCapabilities"
        wait_until(proc, http_ready(capabilities), timeout)
        yield CswServer(url=url, proc=proc, directory=directory)
    finally:
        stop(proc, timeout=5)


def _config(url: str, database: Path, logfile: Path) -> str:
    return f"""[server]
home={ROOT}
url={url}
mimetype=application/xml; charset=UTF-8
encoding=UTF-8
language=en-US
maxrecords=100
loglevel=WARNING
logfile={logfile}
pretty_print=true
profiles=apiso

[manager]
transactions=false
allowed_ips=127.0.0.1

[metadata:main]
identification_title=Earth Analytics Lab test catalogue
identification_abstract=ISO 19139 dataset records for the earthlab tests
identification_keywords=catalogue,discovery
identification_keywords_type=theme
identification_fees=None
identification_accessconstraints=None
provider_name=earthlab tests
provider_url=http://{IP}/
contact_name=earthlab
contact_position=tests
contact_address=none
contact_city=none
contact_stateorprovince=none
contact_postalcode=none
contact_country=France
contact_phone=none
contact_fax=none
contact_email=tests@example.org
contact_url=http://{IP}/
contact_hours=none
contact_instructions=none
contact_role=pointOfContact

[repository]
database=sqlite:///{database}
table=records
"""


def sample_records(centres_file: Path, directory: Path) -> dict[str, dict[str, Any]]:
    """Write one ISO 19139 record per collection of a sample federation's static catalogues.

    Returns
    -------
    dict
        The collections' JSON by id (what the records were written from).
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Any]] = {}
    for centre in read_centres_file(centres_file).values():
        if not centre.static_catalog:
            continue
        root = Path(centre.static_catalog).parent
        for path in sorted(root.glob("*/collection.json")):
            collection = json.loads(path.read_text(encoding="utf-8"))
            (directory / f"{collection['id']}.xml").write_text(
                iso_record(collection, centre.title), encoding="utf-8"
            )
            written[collection["id"]] = collection
    return written


def iso_record(collection: dict[str, Any], organisation: str) -> str:
    """An ISO 19139 ``gmd:MD_Metadata`` record for a STAC collection (id, title, extent)."""
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
    start_, end = collection["extent"]["temporal"]["interval"][0]
    keywords = "".join(
        f"<gmd:keyword><gco:CharacterString>{escape(k)}</gco:CharacterString></gmd:keyword>"
        for k in collection.get("keywords") or [collection["id"]]
    )
    licence = collection.get("license", "other")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<gmd:MD_Metadata xmlns:gmd="http://www.isotc211.org/2005/gmd"
    xmlns:gco="http://www.isotc211.org/2005/gco" xmlns:gml="http://www.opengis.net/gml/3.2">
  <gmd:fileIdentifier><gco:CharacterString>{escape(collection["id"])}</gco:CharacterString></gmd:fileIdentifier>
  <gmd:hierarchyLevel><gmd:MD_ScopeCode codeList="http://standards.iso.org/iso/19139/resources/gmxCodelists.xml#MD_ScopeCode" codeListValue="dataset"/></gmd:hierarchyLevel>
  <gmd:contact><gmd:CI_ResponsibleParty>
    <gmd:organisationName><gco:CharacterString>{escape(organisation)}</gco:CharacterString></gmd:organisationName>
    <gmd:role><gmd:CI_RoleCode codeList="http://standards.iso.org/iso/19139/resources/gmxCodelists.xml#CI_RoleCode" codeListValue="pointOfContact"/></gmd:role>
  </gmd:CI_ResponsibleParty></gmd:contact>
  <gmd:dateStamp><gco:DateTime>2024-01-01T00:00:00</gco:DateTime></gmd:dateStamp>
  <gmd:identificationInfo><gmd:MD_DataIdentification>
    <gmd:citation><gmd:CI_Citation>
      <gmd:title><gco:CharacterString>{escape(collection.get("title") or collection["id"])}</gco:CharacterString></gmd:title>
      <gmd:date><gmd:CI_Date><gmd:date><gco:Date>2024-01-01</gco:Date></gmd:date>
        <gmd:dateType><gmd:CI_DateTypeCode codeList="http://standards.iso.org/iso/19139/resources/gmxCodelists.xml#CI_DateTypeCode" codeListValue="publication"/></gmd:dateType>
      </gmd:CI_Date></gmd:date>
    </gmd:CI_Citation></gmd:citation>
    <gmd:abstract><gco:CharacterString>{escape(collection.get("description") or "")}</gco:CharacterString></gmd:abstract>
    <gmd:descriptiveKeywords><gmd:MD_Keywords>{keywords}</gmd:MD_Keywords></gmd:descriptiveKeywords>
    <gmd:resourceConstraints><gmd:MD_LegalConstraints>
      <gmd:useConstraints><gmd:MD_RestrictionCode codeList="http://standards.iso.org/iso/19139/resources/gmxCodelists.xml#MD_RestrictionCode" codeListValue="license"/></gmd:useConstraints>
      <gmd:otherConstraints><gco:CharacterString>License: {escape(licence)}</gco:CharacterString></gmd:otherConstraints>
    </gmd:MD_LegalConstraints></gmd:resourceConstraints>
    <gmd:extent><gmd:EX_Extent>
      <gmd:geographicElement><gmd:EX_GeographicBoundingBox>
        <gmd:westBoundLongitude><gco:Decimal>{west!r}</gco:Decimal></gmd:westBoundLongitude>
        <gmd:eastBoundLongitude><gco:Decimal>{east!r}</gco:Decimal></gmd:eastBoundLongitude>
        <gmd:southBoundLatitude><gco:Decimal>{south!r}</gco:Decimal></gmd:southBoundLatitude>
        <gmd:northBoundLatitude><gco:Decimal>{north!r}</gco:Decimal></gmd:northBoundLatitude>
      </gmd:EX_GeographicBoundingBox></gmd:geographicElement>
      <gmd:temporalElement><gmd:EX_TemporalExtent><gmd:extent>
        <gml:TimePeriod gml:id="period-{escape(collection["id"])}">
          <gml:beginPosition>{start_ or ""}</gml:beginPosition>
          <gml:endPosition>{end or ""}</gml:endPosition>
        </gml:TimePeriod>
      </gmd:extent></gmd:EX_TemporalExtent></gmd:temporalElement>
    </gmd:EX_Extent></gmd:extent>
  </gmd:MD_DataIdentification></gmd:identificationInfo>
</gmd:MD_Metadata>
"""
