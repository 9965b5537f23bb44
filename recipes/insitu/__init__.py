"""In-situ readers: files of several formats into one tidy table.

>>> from recipes import insitu
>>> table = insitu.read(["analyse_pc-page1.json", "station_pc.json"])   # format sniffed
>>> table.data            # the tidy DataFrame
>>> table.summary()       # counts, and every row not read with its reason
>>> insitu.validate(table.data)

Every reader returns an :class:`InSituTable`: ``data`` in the tidy schema, ``rejected`` (source
rows not in ``data``: columns ``row``, ``reason``, ``raw``), ``flagged`` (rows kept whose flag the
reader set, same columns) and ``notes`` (conversions, columns not read, assumptions). Nothing is
dropped silently: ``len(data) + len(rejected)`` is the number of values in the source.

Tidy schema
-----------
==============  ======================  ==============================================
column          dtype                   meaning
==============  ======================  ==============================================
``station_id``  str                     station code (as the provider writes it)
``time``        datetime64[us, UTC]     sampling time, UTC
``lon, lat``    float64                 WGS84 degrees
``depth``       float64                 metres below the surface, NaN if unknown (extra
                                        column: surface and bottom samples differ)
``parameter``   str                     lab parameter name (table below)
``value``       float64                 in the canonical unit
``unit``        str                     canonical unit (turbidity: ``FNU`` or ``NTU``)
``qc_flag``     int8                    SeaDataNet L20 (below)
``source``      str                     provider (``hubeau-naiades``, ``erddap``...)
==============  ======================  ==============================================

Parameters and canonical units
------------------------------
=============================  ============  ==========================================
parameter                      unit          accepted and converted (x factor)
=============================  ============  ==========================================
turbidity                      FNU / NTU     FNU (NFU); NTU is kept as NTU: the two
                                             methods differ and are never converted
chlorophyll_a                  µg/L          ug/L, mg/m3, mg m-3 (x1); mg/L (x1000)
suspended_matter               mg/L          g/m3, g m-3 (x1); g/L (x1000); µg/L (x0.001)
water_temperature              degC          °C, degree_Celsius, Celsius; K (-273.15)
dissolved_oxygen               mg(O2)/L      mg/L; mL/L (x1.42903); µmol/L (x0.0319988)
oxygen_saturation              %
salinity                       1             PSU, PSS-78, dimensionless
ph                             1             unité pH, pH units, dimensionless
conductivity_25c               µS/cm         mS/cm (x1000), S/m (x10000)
nitrate                        mg(NO3)/L     µmol/L (x0.0620049); mg(N)/L (x4.42680)
nitrite                        mg(NO2)/L     µmol/L (x0.0460055); mg(N)/L (x3.28454)
ammonium                       mg(NH4)/L     µmol/L (x0.0180385); mg(N)/L (x1.28784)
orthophosphate                 mg(PO4)/L     µmol/L (x0.0949714); mg(P)/L (x3.06619)
silicate                       µmol/L        mg(SiO2)/L (x16.6433); mg(Si)/L (x35.6056)
total_phosphorus               mg(P)/L
kjeldahl_nitrogen              mg(N)/L
bod5                           mg(O2)/L
organic_carbon                 mg(C)/L
particulate_organic_carbon     µg/L          as chlorophyll_a
particulate_organic_nitrogen   µg/L          as chlorophyll_a
delta15n_particulate           permil        ‰
delta13c_particulate           permil        ‰
=============================  ============  ==========================================

Unit spellings are matched ignoring case, blanks and the micro sign; any other unit is not
guessed: the row is rejected with a reason naming the accepted ones. Molar masses are IUPAC
standard atomic weights; mL/L of O2 uses 22.392 L/mol. Hub'Eau SANDRE codes the lab does not map
keep the name ``sandre_<code>`` and their unit as given (a note lists them).

Plausible ranges
----------------
A value outside its parameter's plausible range (``PARAMETERS[name].valid_range``, in the
canonical unit, bounds included) is kept with flag 4 (bad) and listed in ``flagged`` with the
range; so is a sampling time more than a day after the present (a date in 2099), and a depth
outside ``DEPTH_RANGE`` = [0, 11000] metres below the surface (a negative depth: a height, or a
depth written with the wrong sign), whatever the parameter.

=============================  ==================================
parameter                      plausible range (canonical unit)
=============================  ==================================
turbidity                      [0, 4000] FNU / NTU
chlorophyll_a                  [0, 1000] µg/L
suspended_matter               [0, 50000] mg/L
water_temperature              [-3, 45] degC
dissolved_oxygen               [0, 40] mg(O2)/L
oxygen_saturation              [0, 400] %
salinity                       [0, 70] 1
ph                             [0, 14] 1
conductivity_25c               [0, 100000] µS/cm
nitrate                        [0, 1000] mg(NO3)/L
nitrite                        [0, 100] mg(NO2)/L
ammonium                       [0, 500] mg(NH4)/L
orthophosphate                 [0, 100] mg(PO4)/L
silicate                       [0, 2000] µmol/L
total_phosphorus               none (negative values are flagged)
kjeldahl_nitrogen              none (negative values are flagged)
bod5                           none (negative values are flagged)
organic_carbon                 none (negative values are flagged)
particulate_organic_carbon     none (negative values are flagged)
particulate_organic_nitrogen   none (negative values are flagged)
delta15n_particulate           none
delta13c_particulate           none
=============================  ==================================

Quality flags (SeaDataNet L20)
------------------------------
0 no quality control, 1 good, 2 probably good, 3 probably bad, 4 bad, 5 changed, 6 below
detection/quantification limit, 7 in excess, 8 interpolated, 9 missing. Readers map:

- Hub'Eau ``code_remarque`` (SANDRE nomenclature 155): 1 quantified -> flag from
  ``code_qualification`` (SANDRE 414: 1 correct -> 1, 2 incorrect -> 4, 3 uncertain -> 3,
  0 / 4 not qualified -> 0); 2 below detection, 7 traces, 10 below quantification -> 6 with
  value = ``limite_detection`` / ``limite_quantification`` (else ``resultat``, which Naïades sets
  to the limit); 3 above saturation -> 7 with value = ``limite_saturation`` (else ``resultat``);
  an incorrect or uncertain qualification overrides 6 and 7. Codes 0 (not done), 4, 5, 6, 8, 9
  (presence, counts, taxa) are rejected.
- SOMLIT quality codes (somlit.fr): 0 below detection -> 6, 2 good -> 1, 3 questionable -> 3,
  4 bad -> 4, 6 good mean of replicates -> 1, 7 good outside SOMLIT protocols -> 2, 8 not yet
  flagged -> 0; 1, 5, 9 (no measurement) -> rejected.
- ERDDAP ``<variable>_qc`` columns (IOOS QARTOD): 1 -> 1, 2 not evaluated -> 0, 3 -> 3,
  4 -> 4, 9 -> 9. Files without flags (CF-DSG, ERDDAP without ``_qc``) get 0.
- SeaDataNet ``QV:SEADATANET``: L20 as is, ``Q`` (below quantification) -> 6.

Negative turbidity, chlorophyll_a, suspended matter (and other concentrations) are kept with
flag 4 and listed in ``flagged``. Exact duplicates (same station, time, depth, parameter, value,
unit) are kept once; the copies are rejected. Missing or non-numeric values, unknown parameters,
units or flags, unreadable times and missing coordinates are rejected.

Times
-----
Times with a zone (``Z``, ``+02:00``) are converted to UTC; CF times are UTC by the CF
conventions and SeaDataNet times UT by the format. Times without a zone (Hub'Eau, SOMLIT, naive
CSV) are read as UTC with a :class:`NaiveTimeWarning`, unless ``timezone="Europe/Paris"`` (or
another IANA zone) says where they were written, or ``naive_time="error"`` refuses them.

Formats
-------
``table``
    CSV or Parquet already in the tidy schema (the sample federation's assets).
``hubeau``
    Hub'Eau Naïades ``analyse_pc`` JSON pages (API v1 and v2) joined to ``station_pc`` pages;
    Lambert-93 station coordinates (``code_projection`` 26) are converted with pyproj and
    checked against the given longitude/latitude. :func:`fetch_hubeau` follows ``next`` links.
    An analysis without ``heure_prelevement`` is rejected (its time of day is unknown).
``erddap``
    ERDDAP tabledap ``.csv`` (units on line 2) and ``.csvp`` (``name (units)`` headers).
``dsg``
    CF discrete-sampling-geometry ``timeSeries`` netCDF (single station, orthogonal and
    incomplete multidimensional, contiguous and indexed ragged arrays).
``somlit``
    SOMLIT hydrology CSV exports (values with ``q`` flag columns; units of the SOMLIT list).
``odv``
    SeaDataNet ODV spreadsheet text.
"""

from __future__ import annotations

from recipes._errors import InSituFormatError
from recipes.insitu._core import (
    DEPTH_RANGE,
    InSituTable,
    InSituWarning,
    NaiveTimeWarning,
    PagingLimitWarning,
    UnknownParameterError,
    concat,
)
from recipes.insitu._dsg import read_dsg
from recipes.insitu._erddap import read_erddap
from recipes.insitu._hubeau import fetch_hubeau, read_hubeau
from recipes.insitu._odv import read_odv
from recipes.insitu._read import read, sniff
from recipes.insitu._schema import COLUMNS, InSituSchemaError, validate
from recipes.insitu._somlit import read_somlit
from recipes.insitu._table import read_table
from recipes.insitu._units import PARAMETERS, Parameter

__all__ = [
    "COLUMNS",
    "DEPTH_RANGE",
    "PARAMETERS",
    "InSituFormatError",
    "InSituSchemaError",
    "InSituTable",
    "InSituWarning",
    "NaiveTimeWarning",
    "PagingLimitWarning",
    "Parameter",
    "UnknownParameterError",
    "concat",
    "fetch_hubeau",
    "read",
    "read_dsg",
    "read_erddap",
    "read_hubeau",
    "read_odv",
    "read_somlit",
    "read_table",
    "sniff",
    "validate",
]
