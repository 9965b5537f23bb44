"""The demo's report explains itself: synthetic data said, metrics and rejections explained,
readable figures with captions (``recipes/_report.py``, on the output of ``earthlab demo``)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_demo import demo  # noqa: F401 - the module's `earthlab demo` run on the sample

import lab
from lab._cli import main
from recipes import _report
from recipes.matchup import REASONS, MatchupProtocol

pytestmark = pytest.mark.slow

_VOID = {"meta", "img", "br", "hr", "link", "input"}


class Node:
    """An element of the parsed page: tag, attributes, children and text."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []
        self.parts: list[str | Node] = []

    def text(self) -> str:
        return " ".join(
            " ".join((p if isinstance(p, str) else p.text()).split()) for p in self.parts
        ).strip()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if child.tag == tag and all(child.attrs.get(k) == v for k, v in attrs.items()):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}> in the report"
        return found[0]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(text: str) -> Node:
    tree = _Tree()
    tree.feed(text)
    tree.close()
    return tree.root


@pytest.fixture(scope="module")
def page(demo: Path) -> Node:  # noqa: F811 - the imported fixture
    return parse((demo / "report.html").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def figures_input(demo: Path) -> tuple[xr.Dataset, pd.DataFrame]:  # noqa: F811
    cube = xr.open_zarr(demo / "cube.zarr", consolidated=False)
    assert cube.rio.crs is not None
    return cube, pd.read_parquet(demo / "matchups.parquet")


def test_the_report_says_first_that_its_data_are_synthetic_and_from_which_truth(
    page: Node, sample_truth: dict
) -> None:
    body = page.find("body")
    notice = body.find("div", id="synthetic-data")
    first_section = next(i for i, c in enumerate(body.children) if c.tag == "h2")
    assert body.children.index(notice) < first_section, "the statement comes before any section"
    text = notice.text()
    assert text.startswith("Synthetic data.")
    assert "embedded sample federation" in text and f"seed {sample_truth['seed']}" in text
    nechad = sample_truth["algorithms"]["nechad2009_turbidity"]
    assert f"A = {nechad['A']}" in text and f"C = {nechad['C']}" in text
    for coefficient in sample_truth["algorithms"]["ndci_mishra2012"]["coefficients"]:
        assert f"{coefficient:g}" in text
    assert f"σ = {sample_truth['noise']['insitu_ln_sigma']} in ln" in text


def test_one_sentence_per_metric_of_the_table(page: Node) -> None:
    table = page.find("table", id="metrics")
    headers = [th.text() for th in table.find_all("tr")[0].find_all("th")][1:]
    assert {"RMSE", "bias", "r²", "MdSA %", "MAPE %", "slope"} <= set(headers)
    notes = page.find("dl", id="metric-notes")
    terms = [dt.text() for dt in notes.find_all("dt")]
    explanations = [dd.text() for dd in notes.find_all("dd")]
    assert terms == headers
    assert len(explanations) == len(terms) and all(len(e) > 20 for e in explanations)
    rows = table.find_all("tr")[1:]
    assert [r.find("th").text() for r in rows] == ["turbidity", "chlorophyll_a"]
    assert all(len(r.find_all("td")) == len(headers) for r in rows)


def test_one_rule_per_rejection_reason_present(page: Node, demo: Path) -> None:  # noqa: F811
    matchups = pd.read_parquet(demo / "matchups.parquet")
    present = set(matchups["reason"])
    assert {"kept", "time", "land", "clouds"} <= present
    rows = {
        tr.attrs["data-reason"]: tr for tr in page.find("table", id="reasons").find_all("tr")[1:]
    }
    assert set(rows) == present
    counts = matchups["reason"].value_counts()
    for reason, row in rows.items():
        count, rule = (td.text() for td in row.find_all("td"))
        assert int(count) == counts[reason]
        assert len(rule) > 30, reason
    assert "within ±3 h" in rows["time"].text()  # Bailey & Werdell's time window
    assert "5 × 5-pixel box" in rows["land"].text()  # the box size
    assert "50%" in rows["clouds"].text()  # the minimum share of valid pixels
    if "cv" in rows:
        assert "0.15" in rows["cv"].text()  # the CV threshold


def test_every_reason_the_matchups_can_hold_has_a_rule() -> None:
    rules = _report.reason_rules(MatchupProtocol(window=7, max_dt="1h", min_valid=0.6))
    assert set(rules) == set(REASONS)
    assert "7 × 7" in rules["outside"] and "±1 h" in rules["time"] and "60%" in rules["nodata"]


def test_every_figure_has_its_image_and_a_caption(page: Node, demo: Path) -> None:  # noqa: F811
    figures = page.find_all("figure")
    assert len(figures) == 3
    for figure in figures:
        image = figure.find("img")
        assert (demo / str(image.attrs["src"])).is_file()
        caption = figure.find("figcaption").text()
        assert len(caption) > 80 and caption.endswith(_report.SYNTHETIC_CAPTION.strip())
    maps = page.find("figure", id="figure-maps").find("figcaption").text()
    assert "km (EPSG:32631)" in maps and re.search(r"\(\d{4}-\d{2}-\d{2}\)", maps)


def _tick_labels(axis: Any) -> list[str]:
    lo, hi = sorted(axis.get_view_interval())
    return [
        t.get_text() for t in axis.get_ticklabels() if t.get_text() and lo <= t.get_position()[
            0 if axis.axis_name == "x" else 1
        ] <= hi
    ]  # fmt: skip


def test_map_axes_are_in_km_with_stations_and_the_water_outline(
    figures_input: tuple[xr.Dataset, pd.DataFrame],
) -> None:
    import matplotlib.pyplot as plt

    cube, matchups = figures_input
    fig = _report.map_figure(cube, matchups)
    try:
        fig.canvas.draw()
        maps = [ax for ax in fig.axes if ax.get_label().startswith("map:")]
        assert len(maps) == 4
        for ax in maps:
            assert "km" in ax.get_xlabel() and "km" in ax.get_ylabel()
            for axis in (ax.xaxis, ax.yaxis):
                assert axis.get_offset_text().get_text() == ""
                labels = _tick_labels(axis)
                assert len(labels) >= 3 and all(re.fullmatch(r"\d{3,4}", t) for t in labels)
            # 16 km × 16 km around the lagoon (not metres)
            x0, x1 = ax.get_xlim()
            assert 10 < x1 - x0 < 30 and 100 < x0 < 1000
            labels = {t.get_text() for t in ax.texts}
            assert set(matchups["station_id"]) <= labels
            assert ax.collections, "the water outline (a contour) is drawn"
    finally:
        plt.close(fig)


def test_scatter_axes_are_log_with_labelled_decades_and_a_one_to_one_line(
    figures_input: tuple[xr.Dataset, pd.DataFrame],
) -> None:
    import matplotlib.pyplot as plt

    _, matchups = figures_input
    fig = _report.scatter_figure(matchups)
    try:
        fig.canvas.draw()
        assert len(fig.axes) == 2
        for ax in fig.axes:
            assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
            for axis in (ax.xaxis, ax.yaxis):
                labels = _tick_labels(axis)
                assert len(labels) >= 2 and set(labels) <= {"0.01", "0.1", "1", "10", "100", "1000"}
            one_to_one = [
                line
                for line in ax.get_lines()
                if np.array_equal(line.get_xdata(), line.get_ydata())
            ]
            assert one_to_one and one_to_one[0].get_label() == "1:1"
    finally:
        plt.close(fig)


def test_sample_detection_needs_the_samples_own_centres_file(
    sample_dir: Path, tmp_path: Path
) -> None:
    assert _report.sample_record(lab.centres(sample_dir / "centres.yaml"))["generator"] == (
        "earthlab sample"
    )
    text = (sample_dir / "centres.yaml").read_text()
    # the same catalogues under another centres file, without the generator's record
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("theia", "odatis", "dinamis", "aeris"):
        (copy / name).symlink_to(sample_dir / name)
    (copy / "centres.yaml").write_text(text.replace("sample federation", "federation"))
    assert _report.sample_record(lab.centres(copy / "centres.yaml")) is None
    # a generator record next to a centres file whose catalogues are elsewhere
    (copy / "truth").mkdir()
    (copy / "truth" / "generator.json").write_text(
        (sample_dir / "truth" / "generator.json").read_text()
    )
    assert _report.sample_record(lab.centres(copy / "centres.yaml")) is None
    # a record by another generator
    local = tmp_path / "local"
    local.mkdir()
    for name in ("theia", "odatis", "dinamis", "aeris"):
        (local / name).symlink_to(sample_dir / name, target_is_directory=True)
    (local / "truth").mkdir()
    (local / "truth" / "generator.json").write_text(json.dumps({"generator": "someone else"}))
    (local / "centres.yaml").write_text(text)
    assert _report.sample_record(lab.centres(local / "centres.yaml")) is None
    assert _report.sample_record(None) is None


def test_the_local_labs_centres_file_derived_from_the_sample_is_the_sample(
    sample_dir: Path, tmp_path: Path
) -> None:
    """On the hub the catalogues are STAC APIs, but the data are still the synthetic sample."""
    from lab_server.deploy._catalogues import write_centres_file

    sample = lab.centres(sample_dir / "centres.yaml")
    served = {
        name: {"kind": "stac-api", "href": f"http://127.0.0.1:9/stac/{name}/"} for name in sample
    }
    derived = write_centres_file(tmp_path / "lab-centres.yaml", sample, served)
    centres = lab.centres(derived)
    assert centres.derived_from == (sample_dir / "centres.yaml").resolve()
    assert _report.sample_record(centres)["generator"] == "earthlab sample"
    # derived from a centres file that is not the sample's: nothing synthetic is claimed
    other = tmp_path / "other"
    other.mkdir()
    for name in ("theia", "odatis", "dinamis", "aeris"):
        (other / name).symlink_to(sample_dir / name, target_is_directory=True)
    (other / "centres.yaml").write_text((sample_dir / "centres.yaml").read_text())
    not_sample = write_centres_file(
        tmp_path / "not.yaml", lab.centres(other / "centres.yaml"), served
    )
    assert _report.sample_record(lab.centres(not_sample)) is None
    # a derived file naming other centres than its source is not the sample either
    partial = tmp_path / "partial.yaml"
    partial.write_text(
        f"version: 1\nderived_from: {sample_dir / 'centres.yaml'}\ncentres:\n"
        "  - name: theia\n    catalog: {kind: stac-api, href: 'http://127.0.0.1:9/stac/theia/'}\n"
    )
    assert _report.sample_record(lab.centres(partial)) is None


def test_the_report_of_other_data_claims_nothing_synthetic(
    sample_dir: Path, tmp_path: Path
) -> None:
    """The whole crossing on the sample's files under a centres file that is not the sample's."""
    copy = tmp_path / "federation"
    copy.mkdir()
    for name in ("theia", "odatis", "dinamis", "aeris"):
        (copy / name).symlink_to(sample_dir / name)
    (copy / "centres.yaml").write_text((sample_dir / "centres.yaml").read_text())
    out = tmp_path / "out"
    assert main(["demo", "--centres", str(copy / "centres.yaml"), "--out", str(out)]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "synthetic" not in text.lower() and 'id="synthetic-data"' not in text
    report = parse(text)
    assert len(report.find_all("figcaption")) == 3
    assert report.find("dl", id="metric-notes").find_all("dd")
