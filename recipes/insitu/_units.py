"""Parameters, units and quality-flag vocabularies shared by every in-situ reader.

Everything here is data: the readers look things up, nothing is computed from guesses. The
public documentation of these tables is the docstring of :mod:`recipes.insitu`; keep both in step.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# --- molar masses (g/mol, IUPAC standard atomic weights) used by the nutrient conversions ---
_M = {"N": 14.0067, "O": 15.9994, "H": 1.00794, "P": 30.973762, "Si": 28.0855}
_M_NO3 = _M["N"] + 3 * _M["O"]
_M_NO2 = _M["N"] + 2 * _M["O"]
_M_NH4 = _M["N"] + 4 * _M["H"]
_M_PO4 = _M["P"] + 4 * _M["O"]
_M_SIO2 = _M["Si"] + 2 * _M["O"]
_M_O2 = 2 * _M["O"]
#: mg of O2 in one mL of O2 gas: molar mass over the real-gas molar volume of O2 at STP
#: (22.392 L/mol), the factor oceanographers use to turn mL/L into mg/L (1.42903).
O2_MG_PER_ML = _M_O2 / 22.392


def unit_key(unit: str) -> str:
    """Return the lookup key of a unit spelling: micro signs as ``u``, no blanks, case-folded."""
    return re.sub(r"\s+", "", unit.replace("µ", "u").replace("μ", "u")).casefold()


@dataclass(frozen=True)
class Parameter:
    """A lab parameter: its canonical unit and the unit spellings accepted for it."""

    name: str
    """Lab name of the parameter (``turbidity``, ``chlorophyll_a``...)."""
    unit: str
    """Canonical unit every accepted spelling is converted to (turbidity: see ``units``)."""
    description: str
    """One line for people."""
    non_negative: bool
    """Negative values are physically impossible (they get flag 4 and are reported)."""
    units: Mapping[str, tuple[str, float, float]] = field(repr=False)
    """Spellings that are not UDUNITS (FNU, PSU, pH...) or carry a chemical basis (mg(N)/L) ->
    (unit written in the table, factor, offset): out = in * factor + offset."""
    valid_range: tuple[float, float] = (-float("inf"), float("inf"))
    """Physically plausible values in ``unit``: others get flag 4 (bad) and are reported."""
    quantity: str | None = None
    """The canonical unit as a UDUNITS string: any unit pint converts to it is accepted."""
    molar_mass: float | None = None
    """g/mol of the measured species: amount concentrations (µmol/L, mmol m-3) convert to mass."""

    def __post_init__(self) -> None:
        keyed = {unit_key(k): v for k, v in self.units.items()}
        object.__setattr__(self, "units", MappingProxyType(keyed))

    def normalise(self, unit: str) -> tuple[str, float, float] | None:
        """Return (written unit, factor, offset) for a unit, or None if not accepted.

        The unit is looked up as written, then as its UDUNITS form (a SeaDataNet P06 code or
        label, see :data:`P06_UNITS` and :data:`SDN_UNIT_LABELS`), then converted with pint to
        the canonical unit (:attr:`quantity`) or, through :attr:`molar_mass`, from an amount
        concentration.
        """
        found = self.units.get(unit_key(unit))
        if found is not None:
            return found
        udunits = as_udunits(unit)
        found = self.units.get(unit_key(udunits))
        if found is not None:
            return found
        if self.quantity is not None:
            scale = convert(udunits, self.quantity)
            if scale is not None:
                return (self.unit, *scale)
        if self.molar_mass is not None:
            scale = convert(udunits, "umol/L")
            if scale is not None and scale[1] == 0.0:
                return (self.unit, scale[0] * self.molar_mass / 1000.0, 0.0)
        return None

    @property
    def accepted(self) -> list[str]:
        """Written units this parameter can end up with (for messages)."""
        return sorted({v[0] for v in self.units.values()})


def _same(written: str, *spellings: str) -> dict:
    """Spellings of ``written`` itself (no conversion)."""
    return {s: (written, 1.0, 0.0) for s in (written, *spellings)}


def _conv(written: str, *spellings: str, factor: float = 1.0, offset: float = 0.0) -> dict:
    """Spellings of another unit converted to ``written``."""
    return {s: (written, factor, offset) for s in spellings}


_UG_L = "µg/L"
_MG_L = "mg/L"
_UMOL_L = "µmol/L"
_MG_O2_L = "mg(O2)/L"
_MICROGRAM_PER_LITRE = {
    **_same(_UG_L, "ug/L", "µg L-1", "ug L-1", "µg.L-1", "ug.L-1", "µg l-1", "ug l-1"),
    **_same(_UG_L, "mg/m3", "mg m-3", "mg.m-3", "mg/m^3", "mg m^-3", "mg/m³", "mg m⁻³"),
    **_conv(_UG_L, "mg/L", "mg L-1", factor=1000.0),
    **_conv(_UG_L, "kg m-3", "kg/m3", factor=1e6),
}
_MILLIGRAM_PER_LITRE = {
    **_same(_MG_L, "mg L-1", "mg.L-1", "mg l-1"),
    **_same(_MG_L, "g/m3", "g m-3", "g.m-3", "g/m^3", "g m^-3", "g/m³", "g m⁻³"),
    **_conv(_MG_L, "g/L", "g L-1", "kg m-3", "kg/m3", factor=1000.0),
    **_conv(_MG_L, "µg/L", "ug/L", "µg L-1", "ug L-1", "mg m-3", "mg/m3", factor=1e-3),
}
_UMOL = ("µmol/L", "umol/L", "µmol L-1", "umol L-1", "µM", "uM", "mmol m-3", "mmol/m3")
_DIMENSIONLESS = ("1", "", "unitless", "dimensionless")


def _per_litre(written: str, alias: str, molar_mass: float, element: str) -> dict:
    """Mass concentration of an ion: as the ion, in µmol/L, or as its N or P element."""
    return {
        **_same(written, alias),
        **_conv(written, *_UMOL, factor=molar_mass / 1000.0),
        **_conv(written, f"mg({element})/L", factor=molar_mass / _M[element]),
    }


def _p(
    name: str,
    unit: str,
    description: str,
    units: Mapping[str, tuple[str, float, float]],
    *,
    non_negative: bool = True,
    valid_range: tuple[float, float] = (-float("inf"), float("inf")),
    quantity: str | None = None,
    molar_mass: float | None = None,
) -> Parameter:
    return Parameter(
        name, unit, description, non_negative, units, valid_range, quantity, molar_mass
    )


_PARAMETER_LIST = (
    _p(
        "turbidity",
        "FNU",
        "Turbidity (ISO 7027 FNU; NTU is kept as NTU, never converted)",
        {**_same("FNU", "NFU", "fnu"), **_same("NTU")},
        valid_range=(0.0, 4000.0),
    ),
    _p(
        "chlorophyll_a",
        _UG_L,
        "Chlorophyll-a concentration",
        _MICROGRAM_PER_LITRE,
        valid_range=(0.0, 1000.0),
        quantity="ug/L",
    ),
    _p(
        "suspended_matter",
        _MG_L,
        "Suspended particulate matter (SPM, MES)",
        _MILLIGRAM_PER_LITRE,
        valid_range=(0.0, 50000.0),
        quantity="mg/L",
    ),
    _p(
        "water_temperature",
        "degC",
        "Water temperature",
        {
            **_same("degC", "°C", "deg_C", "deg C", "degree_C", "degrees_C", "degree_Celsius"),
            **_same("degC", "degrees_Celsius", "Celsius", "degree Celsius", "degrees Celsius"),
            **_conv("degC", "K", "kelvin", offset=-273.15),
        },
        non_negative=False,
        valid_range=(-3.0, 45.0),
        quantity="degC",
    ),
    _p(
        "dissolved_oxygen",
        _MG_O2_L,
        "Dissolved oxygen (O2) mass concentration",
        {
            **_same(_MG_O2_L, "mg O2/L", "mgO2/L", "mg/L O2", "mg/L", "mg L-1", "g m-3", "g/m3"),
            **_conv(_MG_O2_L, "mL/L", "ml/l", "mL L-1", "ml l-1", factor=O2_MG_PER_ML),
            **_conv(_MG_O2_L, *_UMOL, factor=_M_O2 / 1000.0),
        },
        valid_range=(0.0, 40.0),
        quantity="mg/L",
        molar_mass=_M_O2,
    ),
    _p(
        "oxygen_saturation",
        "%",
        "Dissolved oxygen saturation",
        _same("%", "percent", "% sat"),
        valid_range=(0.0, 400.0),
    ),
    _p(
        "salinity",
        "1",
        "Practical salinity (PSS-78)",
        # practical salinity is written 35, whatever the label: 1e-3 (CF), ppt, P.S.U. are the
        # same numbers, not a factor
        _same(
            "1",
            *_DIMENSIONLESS,
            "PSU",
            "PSS-78",
            "PSS78",
            "P.S.U.",
            "1e-3",
            "0.001",
            "ppt",
            "per mille",
            "‰",
        ),
        valid_range=(0.0, 70.0),
    ),
    _p(
        "ph",
        "1",
        "pH",
        _same("1", *_DIMENSIONLESS, "pH", "unité pH", "pH units", "pH unit"),
        non_negative=False,
        valid_range=(0.0, 14.0),
    ),
    _p(
        "conductivity_25c",
        "µS/cm",
        "Electrical conductivity at 25 °C",
        {
            **_same("µS/cm", "uS/cm", "µS cm-1", "uS cm-1"),
            **_conv("µS/cm", "mS/cm", "mS cm-1", factor=1000.0),
            **_conv("µS/cm", "S/m", "S m-1", factor=1e4),
        },
        valid_range=(0.0, 100000.0),
        quantity="uS/cm",
    ),
    _p(
        "nitrate",
        "mg(NO3)/L",
        "Nitrate, as NO3",
        _per_litre("mg(NO3)/L", "mg NO3/L", _M_NO3, "N"),
        valid_range=(0.0, 1000.0),
        molar_mass=_M_NO3,
    ),
    _p(
        "nitrite",
        "mg(NO2)/L",
        "Nitrite, as NO2",
        _per_litre("mg(NO2)/L", "mg NO2/L", _M_NO2, "N"),
        valid_range=(0.0, 100.0),
        molar_mass=_M_NO2,
    ),
    _p(
        "ammonium",
        "mg(NH4)/L",
        "Ammonium, as NH4",
        _per_litre("mg(NH4)/L", "mg NH4/L", _M_NH4, "N"),
        valid_range=(0.0, 500.0),
        molar_mass=_M_NH4,
    ),
    _p(
        "orthophosphate",
        "mg(PO4)/L",
        "Orthophosphate, as PO4",
        _per_litre("mg(PO4)/L", "mg PO4/L", _M_PO4, "P"),
        valid_range=(0.0, 100.0),
        molar_mass=_M_PO4,
    ),
    _p(
        "silicate",
        _UMOL_L,
        "Silicate (dissolved silicon)",
        {
            **_same(_UMOL_L, *_UMOL),
            **_conv(_UMOL_L, "mg(SiO2)/L", factor=1000.0 / _M_SIO2),
            **_conv(_UMOL_L, "mg(Si)/L", factor=1000.0 / _M["Si"]),
        },
        valid_range=(0.0, 2000.0),
        quantity="umol/L",
    ),
    _p("total_phosphorus", "mg(P)/L", "Total phosphorus, as P", _same("mg(P)/L", "mg P/L")),
    _p("kjeldahl_nitrogen", "mg(N)/L", "Kjeldahl nitrogen, as N", _same("mg(N)/L", "mg N/L")),
    _p("bod5", _MG_O2_L, "Biochemical oxygen demand in 5 days", _same(_MG_O2_L, "mg O2/L")),
    _p("organic_carbon", "mg(C)/L", "Organic carbon, as C", _same("mg(C)/L", "mg C/L")),
    _p(
        "particulate_organic_carbon",
        _UG_L,
        "Particulate organic carbon (POC, COP)",
        _MICROGRAM_PER_LITRE,
    ),
    _p(
        "particulate_organic_nitrogen",
        _UG_L,
        "Particulate organic nitrogen (PON, NOP)",
        _MICROGRAM_PER_LITRE,
    ),
    _p(
        "delta15n_particulate",
        "permil",
        "δ15N of particulate matter",
        _same("permil", "‰", "per mil", "o/oo"),
        non_negative=False,
    ),
    _p(
        "delta13c_particulate",
        "permil",
        "δ13C of particulate matter",
        _same("permil", "‰", "per mil", "o/oo"),
        non_negative=False,
    ),
)

#: Every parameter the lab knows, by name.
PARAMETERS: Mapping[str, Parameter] = MappingProxyType({p.name: p for p in _PARAMETER_LIST})

#: Parameters read from SANDRE codes that the lab does not map keep this name pattern.
SANDRE_UNMAPPED = re.compile(r"^sandre_\d+$")

#: SANDRE parameter codes (referentiel PAR) -> lab parameter.
SANDRE_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "1295": "turbidity",
        "1439": "chlorophyll_a",
        "1301": "water_temperature",
        "1311": "dissolved_oxygen",
        "1305": "suspended_matter",
        "1340": "nitrate",
        "1302": "ph",
        "1303": "conductivity_25c",
        "1312": "oxygen_saturation",
        "1313": "bod5",
        "1319": "kjeldahl_nitrogen",
        "1335": "ammonium",
        "1339": "nitrite",
        "1350": "total_phosphorus",
        "1433": "orthophosphate",
        "1841": "organic_carbon",
    }
)

#: SeaDataNet L20 measurand qualifier flags (the integer ones; letters A, B, Q are not used).
L20_FLAGS: Mapping[int, str] = MappingProxyType(
    {
        0: "no quality control",
        1: "good value",
        2: "probably good value",
        3: "probably bad value",
        4: "bad value",
        5: "changed value",
        6: "value below detection or quantification limit",
        7: "value in excess",
        8: "interpolated value",
        9: "missing value",
    }
)

#: SANDRE code_qualification (nomenclature 414) -> L20.
SANDRE_QUALIFICATION: Mapping[str, int] = MappingProxyType({"0": 0, "1": 1, "2": 4, "3": 3, "4": 0})

#: SANDRE code_remarque (nomenclature 155): meaning, for messages and documentation.
SANDRE_REMARKS: Mapping[str, str] = MappingProxyType(
    {
        "0": "analysis not done",
        "1": "quantified result",
        "2": "result below the detection limit",
        "3": "result above the saturation limit",
        "4": "presence/absence",
        "5": "uncountable",
        "6": "taxa not individualised",
        "7": "traces (between detection and quantification limits)",
        "8": "count above the value",
        "9": "count below the value",
        "10": "result below the quantification limit",
    }
)

#: SOMLIT quality codes (somlit.fr "Quality codes") -> L20; None means "no measurement".
SOMLIT_FLAGS: Mapping[int, int | None] = MappingProxyType(
    {0: 6, 1: None, 2: 1, 3: 3, 4: 4, 5: None, 6: 1, 7: 2, 8: 0, 9: None}
)
SOMLIT_FLAG_MEANINGS: Mapping[int, str] = MappingProxyType(
    {
        0: "below detection limit",
        1: "sampled but not measured",
        2: "good",
        3: "questionable",
        4: "bad",
        5: "sampled, value not yet reported",
        6: "good, mean of replicates",
        7: "good, outside SOMLIT protocols",
        8: "not yet flagged",
        9: "no sample",
    }
)

#: IOOS QARTOD flags (ERDDAP ``<variable>_qc`` columns) -> L20.
QARTOD_FLAGS: Mapping[int, int] = MappingProxyType({1: 1, 2: 0, 3: 3, 4: 4, 9: 9})

#: Variable names (case-insensitive) and CF standard names read by default (ERDDAP, CF-DSG).
DEFAULT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "turbidity": "turbidity",
        "turb": "turbidity",
        "sea_water_turbidity": "turbidity",
        "chlorophyll": "chlorophyll_a",
        "chlorophyll_a": "chlorophyll_a",
        "chla": "chlorophyll_a",
        "chl": "chlorophyll_a",
        "mass_concentration_of_chlorophyll_a_in_sea_water": "chlorophyll_a",
        "temperature": "water_temperature",
        "temp": "water_temperature",
        "water_temperature": "water_temperature",
        "sea_water_temperature": "water_temperature",
        "salinity": "salinity",
        "psal": "salinity",
        "sea_water_practical_salinity": "salinity",
        "ph": "ph",
        "sea_water_ph_reported_on_total_scale": "ph",
        "dissolved_oxygen": "dissolved_oxygen",
        "mass_concentration_of_oxygen_in_sea_water": "dissolved_oxygen",
        "suspended_matter": "suspended_matter",
        "spm": "suspended_matter",
        "mass_concentration_of_suspended_matter_in_sea_water": "suspended_matter",
    }
)

#: CF standard names (https://cfconventions.org/standard-names.html) -> lab parameter. When a
#: variable has a ``standard_name``, it alone decides: ``temperature`` with
#: ``standard_name = air_temperature`` is not water temperature.
STANDARD_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "sea_water_temperature": "water_temperature",
        "sea_surface_temperature": "water_temperature",
        "sea_water_turbidity": "turbidity",
        "mass_concentration_of_chlorophyll_a_in_sea_water": "chlorophyll_a",
        "sea_water_practical_salinity": "salinity",
        "sea_water_salinity": "salinity",
        "sea_water_ph_reported_on_total_scale": "ph",
        "mass_concentration_of_oxygen_in_sea_water": "dissolved_oxygen",
        "mole_concentration_of_dissolved_molecular_oxygen_in_sea_water": "dissolved_oxygen",
        "fractional_saturation_of_oxygen_in_sea_water": "oxygen_saturation",
        "mass_concentration_of_suspended_matter_in_sea_water": "suspended_matter",
        "mole_concentration_of_nitrate_in_sea_water": "nitrate",
        "mole_concentration_of_nitrite_in_sea_water": "nitrite",
        "mole_concentration_of_ammonium_in_sea_water": "ammonium",
        "mole_concentration_of_phosphate_in_sea_water": "orthophosphate",
        "mole_concentration_of_silicate_in_sea_water": "silicate",
        # not CF, written by the Ocean Observatories Initiative (OOI) for its pH sensors
        "seawater_ph": "ph",
    }
)

#: SeaDataNet P06 unit codes (NERC Vocabulary Server collection P06, "BODC data storage units",
#: https://vocab.nerc.ac.uk/collection/P06/current/) -> UDUNITS string. Only the codes of the
#: lab's parameters and of depth; pint converts the UDUNITS string.
P06_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "UPAA": "degC",  # Degrees Celsius
        "ULAA": "m",  # Metres
        "UPDB": "dbar",  # Decibars
        "UGPL": "ug/L",  # Micrograms per litre
        "UMGL": "mg/L",  # Milligrams per litre
        "UMMC": "mg/m3",  # Milligrams per cubic metre
        "KGUM": "kg/m3",  # Kilograms per cubic metre
        "UPOX": "umol/L",  # Micromoles per litre
        "UMLL": "mL/L",  # Millilitres per litre
        "UPCT": "%",  # Percent
        "UPPT": "ppt",  # Parts per thousand
        "UUUU": "1",  # Dimensionless
        "UUPH": "pH",  # pH units
    }
)

#: Unit labels written by SeaDataNet and ODV exports that are not UDUNITS -> UDUNITS string.
SDN_UNIT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "celsius degree": "degC",
        "degrees celsius": "degC",
        "degree celsius": "degC",
        "deg c": "degC",
        "degrees c": "degC",
        "c": "degC",
        "p.s.u.": "PSU",
        "psu": "PSU",
        "milligrams per cubic metre": "mg/m3",
        "micrograms per litre": "ug/L",
        "milligrams per litre": "mg/L",
        "micromoles per litre": "umol/L",
        "millimole/m3": "mmol/m3",
        "nephelometric turbidity units": "NTU",
        "formazin nephelometric units": "FNU",
        "dimensionless": "1",
        "metres": "m",
    }
)
_P06 = re.compile(r"^(?:SDN:P06::)?(?P<code>[A-Z]{4})$")
_EXPONENT = re.compile(r"(?<=[A-Za-zµ])(-?\d+)")


def as_udunits(unit: str) -> str:
    """A unit as UDUNITS text: a P06 code or SeaDataNet label translated, otherwise as given."""
    text = unit.strip()
    found = _P06.match(text)
    if found and found["code"] in P06_UNITS:
        return P06_UNITS[found["code"]]
    return SDN_UNIT_LABELS.get(" ".join(text.casefold().split()), text)


@functools.cache
def _registry() -> Any:
    import pint  # imported on first use: ``import recipes.insitu`` stays light

    registry: Any = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    registry.define("degree_Celsius_alias = degC = Celsius")
    return registry


def _pint_text(unit: str) -> str:
    """UDUNITS spelling made readable by pint: ``kg m-3`` -> ``kg m**-3``, ``mg.m-3``."""
    text = unit.replace("µ", "u").replace("μ", "u").replace("³", "3").replace("⁻", "-")
    text = re.sub(r"(?<=[A-Za-z])\.(?=[A-Za-z])", " ", text)
    text = text.replace("^", "**")
    return _EXPONENT.sub(r"**\1", text)


@functools.cache
def convert(unit: str, target: str) -> tuple[float, float] | None:
    """(factor, offset) turning values in ``unit`` into ``target`` with pint, None if it can't.

    Both are UDUNITS strings (``kg m-3``, ``mmol/m3``, ``degC``, ``K``).
    """
    if not unit.strip() or unit.strip() in ("1", "%", "PSU", "pH", "NTU", "FNU", "ppt"):
        return None
    registry = _registry()
    try:
        zero = registry.Quantity(0.0, _pint_text(unit)).to(_pint_text(target)).magnitude
        one = registry.Quantity(1.0, _pint_text(unit)).to(_pint_text(target)).magnitude
    except Exception:  # pint raises many kinds (undefined, dimensionality, syntax)
        return None
    return float(f"{one - zero:.12g}"), float(f"{zero:.12g}")
