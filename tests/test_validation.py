"""recipes.validation: statistics worked out by hand, and recalibrations on known truth."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import lab
from recipes import validation as val
from recipes import water_quality as wq

NAN = float("nan")

# Four pairs chosen so that every statistic can be worked out by hand.
# ratios sat/ref = 2, 0.5, 2, 1; differences sat - ref = 1, -2, 2, 0
SAT = [2.0, 2.0, 4.0, 8.0]
REF = [1.0, 4.0, 2.0, 8.0]
L2 = math.log10(2)

HAND = {
    "n": 4,
    # mean(1, -2, 2, 0) = 1/4
    "bias": 0.25,
    # mean(1, 2, 2, 0) = 5/4
    "mae": 1.25,
    # sqrt((1 + 4 + 4 + 0) / 4) = sqrt(9/4)
    "rmse": 1.5,
    # 100 * mean(1/1, 2/4, 2/2, 0/8) = 100 * 2.5 / 4
    "mape": 62.5,
    # log10 differences L2, -L2, L2, 0: 10^(L2/4) = 2^(1/4)
    "log_bias": 2**0.25,  # 1.1892071
    # 10^(3 L2 / 4) = 2^(3/4)
    "log_mae": 2**0.75,  # 1.6817928
    # |ln ratio| = ln2, ln2, ln2, 0 -> median ln2 -> 100 (2 - 1)
    "mdsa": 100.0,
    # ln ratio sorted -ln2, 0, ln2, ln2 -> M = ln2 / 2 -> 100 (sqrt(2) - 1)
    "sspb": 100 * (math.sqrt(2) - 1),  # 41.4213562
    # ref mean 3.75, sat mean 4; Sxx = 7.5625 + 0.0625 + 3.0625 + 18.0625 = 28.75
    # Sxy = (-2.75)(-2) + (0.25)(-2) + (-1.75)(0) + (4.25)(4) = 22; Syy = 24
    "slope": 22 / 28.75,  # 0.7652174
    "intercept": 4 - 22 / 28.75 * 3.75,  # 1.1304348
    "r": 22 / math.sqrt(28.75 * 24),  # 0.8375265
    "r2": 22**2 / (28.75 * 24),  # 0.7014493
    # in units of L2: log10 ref = 0, 2, 1, 3 and log10 sat = 1, 1, 2, 3
    # SXX = 5, SXY = 2.5 -> slope 0.5, intercept (1.75 - 0.5 * 1.5) L2 = L2
    "slope_log10": 0.5,
    "intercept_log10": L2,  # 0.30103
}


def test_metrics_by_hand():
    stats = val.metrics(SAT, REF)
    for key, expected in HAND.items():
        assert stats[key] == pytest.approx(expected, rel=1e-12), key
    assert stats["n_removed"] == 0
    assert stats["n_log"] == 4
    assert stats["log_bias"] == pytest.approx(1.189207115, rel=1e-9)
    assert stats["sspb"] == pytest.approx(41.421356237, rel=1e-9)


def test_metrics_keys():
    stats = val.metrics(SAT, REF)
    assert tuple(stats)[:13] == val.METRIC_KEYS
    assert set(val.METRIC_KEYS) == {
        "n", "bias", "mae", "rmse", "mape", "log_bias", "log_mae",
        "mdsa", "sspb", "slope", "intercept", "r", "r2",
    }  # fmt: skip
    assert {"slope_log10", "intercept_log10", "n_removed", "n_log"} <= set(stats)
    assert isinstance(stats["n"], int)


def test_metrics_reduced_major_axis():
    stats = val.metrics(SAT, REF, regression="rma")
    # slope = sign(r) sd(sat) / sd(ref) = sqrt(24 / 28.75) = 0.9136639
    assert stats["slope"] == pytest.approx(math.sqrt(24 / 28.75), rel=1e-12)
    assert stats["intercept"] == pytest.approx(4 - math.sqrt(24 / 28.75) * 3.75, rel=1e-12)
    # log10: sqrt(SYY / SXX) with SYY = 0.5625 + 0.5625 + 0.0625 + 1.5625 = 2.75
    assert stats["slope_log10"] == pytest.approx(math.sqrt(2.75 / 5), rel=1e-12)
    assert stats["r"] == pytest.approx(HAND["r"], rel=1e-12)  # r does not depend on it


def test_metrics_inputs_of_any_kind():
    expected = val.metrics(SAT, REF)
    index = ["a", "b", "c", "d"]
    for sat, ref in [
        (np.array(SAT), np.array(REF)),
        (pd.Series(SAT, index=index), pd.Series(REF, index=index)),
        (pd.Series(SAT, dtype="Float64"), np.array(REF)),
    ]:
        assert val.metrics(sat, ref) == pytest.approx(expected)


def test_metrics_removes_and_counts_nan_pairs():
    stats = val.metrics([*SAT, NAN, 5.0, math.inf], [*REF, 3.0, NAN, 1.0])
    assert stats["n"] == 4
    assert stats["n_removed"] == 3
    for key, expected in HAND.items():
        assert stats[key] == pytest.approx(expected, rel=1e-12), key
    series = pd.Series([*SAT, None], dtype="Float64")
    assert val.metrics(series, [*REF, 1.0])["n_removed"] == 1


def test_metrics_leaves_non_positive_pairs_out_of_log_space_with_a_warning():
    with pytest.warns(val.ValidationWarning, match="1 of 5 pair") as record:
        stats = val.metrics([*SAT, 0.0], [*REF, 3.0])
    assert issubclass(record[0].category, lab.EarthLabWarning)
    assert stats["n"] == 5
    assert stats["n_log"] == 4
    for key in ("log_bias", "log_mae", "mdsa", "sspb", "slope_log10", "intercept_log10"):
        assert stats[key] == pytest.approx(HAND[key], rel=1e-12), key
    # linear statistics use all 5: bias = (1 - 2 + 2 + 0 - 3) / 5
    assert stats["bias"] == pytest.approx(-0.4, rel=1e-12)


def test_metrics_log_space_nan_when_too_few_positive_pairs():
    with pytest.warns(val.ValidationWarning) as record:
        stats = val.metrics([1.0, -1.0, 2.0, -3.0], [1.0, 2.0, 2.5, 3.0])
    messages = [str(w.message) for w in record]
    assert any("2 of 4 pair(s)" in m for m in messages)
    assert any("log-space statistics are NaN" in m for m in messages)
    assert math.isnan(stats["log_bias"]) and math.isnan(stats["mdsa"])
    assert stats["bias"] == pytest.approx((0 - 3 - 0.5 - 6) / 4)


def test_metrics_zero_in_situ_left_out_of_mape():
    with pytest.warns(val.ValidationWarning) as record:
        stats = val.metrics([1.0, 2.0, 3.0, 1.0], [1.0, 4.0, 2.0, 0.0])
    assert any("left out of MAPE" in str(w.message) for w in record)
    # 100 * mean(0/1, 2/4, 1/2)
    assert stats["mape"] == pytest.approx(100 / 3, rel=1e-12)


def test_metrics_constant_values_give_nan_regression():
    with pytest.warns(val.ValidationWarning, match="all equal"):
        stats = val.metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(stats["slope"]) and math.isnan(stats["r"])
    assert stats["bias"] == pytest.approx(0.0)


def test_metrics_errors():
    with pytest.raises(val.ValidationDataError, match="at least 3"):
        val.metrics([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(val.ValidationDataError, match=r"only 2 valid .*\(1 removed"):
        val.metrics([1.0, 2.0, NAN], [1.0, 2.0, 3.0])
    with pytest.raises(val.ValidationDataError, match="same length"):
        val.metrics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(val.ValidationDataError, match="align"):
        val.metrics(pd.Series(SAT, index=list("abcd")), pd.Series(REF, index=list("abce")))
    with pytest.raises(val.ValidationDataError, match="numbers"):
        val.metrics(["a", "b", "c"], [1.0, 2.0, 3.0])
    with pytest.raises(lab.ConfigurationError, match="regression"):
        val.metrics(SAT, REF, regression="deming")
    assert issubclass(val.ValidationDataError, lab.EarthLabError)


# --------------------------------------------------------------------------- Nechad recalibration


def _nechad_matchups(a, c=0.1728, n=60, noise=0.0, seed=7):
    """Synthetic matchups: turbidity 1-45 FNU, ρw from the model solved for ρ, noisy in situ."""
    rng = np.random.default_rng(seed)
    turbidity = rng.uniform(1, 45, n)
    rho = turbidity / (a + turbidity / c)  # exact model: T = a ρ / (1 - ρ / c)
    in_situ = turbidity * np.exp(rng.normal(0, noise, n)) if noise else turbidity
    return rho, in_situ


def test_recalibrate_nechad_noise_free_recovers_a_exactly():
    rho, turbidity = _nechad_matchups(350.0)
    cal = val.recalibrate_nechad(rho, turbidity)
    assert cal.A == pytest.approx(350.0, rel=1e-10)  # noqa: SIM300
    assert cal.C == 0.1728
    assert cal.A_se == pytest.approx(0.0, abs=1e-6)
    assert cal.C_se is None and cal.C_ci95 is None and not cal.fit_C
    assert cal.n == 60 and cal.n_excluded == 0
    assert cal.metrics["rmse"] == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(cal.apply(rho), turbidity, rtol=1e-9)


def test_recalibrate_nechad_noisy_recovers_a_within_its_interval():
    rho, turbidity = _nechad_matchups(350.0, noise=0.08)
    cal = val.recalibrate_nechad(rho, turbidity)
    low, high = cal.A_ci95
    assert low < 350.0 < high
    assert high - low < 20  # informative: the published 282.95 is far outside
    assert not low < 282.95 < high
    # interval = A ± t(0.975, 59) se, t = 2.000995
    assert high - cal.A == pytest.approx(2.000995 * cal.A_se, rel=1e-5)
    assert cal.metrics["mdsa"] < 10


def test_recalibrate_nechad_absolute_weighting_is_the_closed_form():
    # With C fixed the model is linear in A: A = Σ x T / Σ x², x = ρ / (1 - ρ / C),
    # se(A) = sqrt(RSS / (n - 1) / Σ x²).
    rho = np.array([0.01, 0.02, 0.03, 0.05, 0.07])
    turbidity = np.array([3.5, 7.0, 11.5, 24.0, 39.0])
    x = rho / (1 - rho / 0.1728)
    a_hat = np.dot(x, turbidity) / np.dot(x, x)
    rss = np.sum((turbidity - a_hat * x) ** 2)
    cal = val.recalibrate_nechad(rho, turbidity, weighting="absolute")
    assert cal.A == pytest.approx(a_hat, rel=1e-8)  # noqa: SIM300
    assert cal.A_se == pytest.approx(math.sqrt(rss / 4 / np.dot(x, x)), rel=1e-6)


def test_recalibrate_nechad_fit_c():
    rho, turbidity = _nechad_matchups(350.0, c=0.15)
    cal = val.recalibrate_nechad(rho, turbidity, C=0.2, fit_C=True)
    assert cal.fit_C
    assert cal.A == pytest.approx(350.0, rel=1e-6)  # noqa: SIM300
    assert cal.C == pytest.approx(0.15, rel=1e-6)  # noqa: SIM300
    noisy = val.recalibrate_nechad(*_nechad_matchups(350.0, c=0.15, noise=0.05), fit_C=True)
    assert noisy.C_ci95[0] < 0.15 < noisy.C_ci95[1]
    assert noisy.A_ci95[0] < 350.0 < noisy.A_ci95[1]


def test_recalibration_plugs_back_into_water_quality():
    rho, turbidity = _nechad_matchups(350.0, noise=0.05)
    cal = val.recalibrate_nechad(rho, turbidity)
    assert wq.nechad(0.05, **cal.coefficients) == pytest.approx(
        cal.A * 0.05 / (1 - 0.05 / 0.1728), rel=1e-12
    )


def test_recalibrate_nechad_excludes_out_of_range_pairs_with_a_warning():
    rho, turbidity = _nechad_matchups(350.0, n=10)
    rho = np.append(rho, [0.09, -0.01, NAN])  # 0.09 >= 0.5 C, ρ <= 0, NaN
    turbidity = np.append(turbidity, [80.0, 1.0, 2.0])
    with pytest.warns(val.ValidationWarning, match="3 of 13 matchup"):
        cal = val.recalibrate_nechad(rho, turbidity)
    assert cal.n == 10 and cal.n_excluded == 3
    assert cal.A == pytest.approx(350.0, rel=1e-10)  # noqa: SIM300


def test_recalibrate_nechad_errors():
    with pytest.raises(val.RecalibrationError, match="at least 3"):
        val.recalibrate_nechad([0.01, 0.02], [3.0, 6.0])
    with pytest.raises(val.RecalibrationError, match="at least 4"):
        val.recalibrate_nechad([0.01, 0.02, 0.03], [3.0, 6.0, 9.0], fit_C=True)
    with pytest.raises(val.RecalibrationError, match="3 distinct"):
        val.recalibrate_nechad([0.01, 0.01, 0.02, 0.02], [3.0, 3.1, 6.0, 6.1], fit_C=True)
    with pytest.raises(lab.ConfigurationError, match="weighting"):
        val.recalibrate_nechad([0.01, 0.02, 0.03], [3.0, 6.0, 9.0], weighting="huber")
    assert issubclass(val.RecalibrationError, val.ValidationDataError)


def test_nechad_calibration_is_frozen_and_reads_well():
    cal = val.recalibrate_nechad(*_nechad_matchups(350.0, noise=0.05))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.A = 1.0  # type: ignore[misc]
    text = repr(cal)
    assert text.startswith("NechadCalibration  n=60")
    assert "A = 3" in text and "95% CI" in text and "C = 0.1728 (fixed)" in text
    assert "MdSA" in text


# --------------------------------------------------------------------------- NDCI recalibration


def test_recalibrate_ndci_noise_free_recovers_published_coefficients():
    ndci = np.linspace(-0.2, 0.4, 25)
    chl = 14.039 + 86.115 * ndci + 194.325 * ndci**2
    cal = val.recalibrate_ndci(ndci, chl)
    np.testing.assert_allclose(cal.a, [14.039, 86.115, 194.325], rtol=1e-9)
    assert cal.degree == 2
    assert cal.ndci_range == pytest.approx((-0.2, 0.4))
    assert cal.coefficients == pytest.approx({"a0": 14.039, "a1": 86.115, "a2": 194.325})
    assert wq.chlorophyll_a_ndci(0.1, **cal.coefficients) == pytest.approx(24.59375)


def test_recalibrate_ndci_linear_uncertainty_by_hand():
    # x = 0, .1, .2, .3; y = 10, 13, 15, 19 -> slope = Sxy / Sxx = 1.45 / 0.05 = 29,
    # intercept = 14.25 - 29 * 0.15 = 9.9; residuals .1, .2, -.7, .4 -> RSS = 0.7,
    # s² = 0.7 / 2 = 0.35; se(slope) = sqrt(0.35 / 0.05) = sqrt(7) = 2.6457513,
    # se(intercept) = sqrt(0.35 (1/4 + 0.15² / 0.05)) = sqrt(0.245) = 0.4949747,
    # 95 % interval: t(0.975, 2) = 4.3026527
    cal = val.recalibrate_ndci([0.0, 0.1, 0.2, 0.3], [10.0, 13.0, 15.0, 19.0], degree=1)
    assert cal.a == pytest.approx((9.9, 29.0), rel=1e-10)
    assert cal.a_se == pytest.approx((math.sqrt(0.245), math.sqrt(7)), rel=1e-10)
    assert cal.a_ci95[1] == pytest.approx(
        (29 - 4.3026527 * math.sqrt(7), 29 + 4.3026527 * math.sqrt(7)), rel=1e-7
    )
    # cov(intercept, slope) = -s² mean(x) / Sxx = -0.35 * 0.15 / 0.05 = -1.05
    assert cal.covariance[0][1] == pytest.approx(-1.05, rel=1e-10)
    assert cal.covariance[1][0] == pytest.approx(cal.covariance[0][1])


def test_recalibrate_ndci_noisy_within_intervals():
    rng = np.random.default_rng(3)
    ndci = rng.uniform(-0.15, 0.35, 80)
    chl = (10 + 80 * ndci + 150 * ndci**2) + rng.normal(0, 1.0, 80)
    cal = val.recalibrate_ndci(ndci, chl)
    for value, (low, high) in zip((10, 80, 150), cal.a_ci95, strict=True):
        assert low < value < high
    text = repr(cal)
    assert text.startswith("NdciCalibration  degree=2, n=80") and "a2 = " in text


def test_ndci_calibration_apply_refuses_to_extrapolate():
    ndci = np.linspace(-0.1, 0.3, 9)
    cal = val.recalibrate_ndci(ndci, 10 + 80 * ndci + 150 * ndci**2)
    out = cal.apply(np.array([0.0, 0.2, 0.31, -0.2]))
    np.testing.assert_allclose(out[:2], [10.0, 10 + 16 + 6], rtol=1e-9)
    assert np.isnan(out[2:]).all()


def test_recalibrate_ndci_errors_and_exclusions():
    with pytest.raises(val.RecalibrationError, match="at least 4"):
        val.recalibrate_ndci([0.0, 0.1, 0.2], [10.0, 13.0, 15.0])
    with pytest.raises(val.RecalibrationError, match="3 distinct"):
        val.recalibrate_ndci([0.1, 0.1, 0.2, 0.2], [10.0, 11.0, 15.0, 16.0])
    with pytest.raises(lab.ConfigurationError, match="degree"):
        val.recalibrate_ndci([0.0, 0.1, 0.2, 0.3], [10.0, 13.0, 15.0, 19.0], degree=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(val.ValidationWarning, match="2 of 6 matchup"):
            val.recalibrate_ndci(
                [0.0, 0.1, 0.2, 0.3, 1.5, 0.2], [10.0, 13.0, 15.0, 19.0, 30.0, -1.0], degree=1
            )
