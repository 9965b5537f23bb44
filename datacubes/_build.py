"""``datacubes.build``: a cube spec to an analysis-ready Zarr store, resumable and incremental.

The build is driven by one process, which alone writes the manifest:

1. search the source and plan the time steps (metadata only);
2. new cube: write the empty store (template, ``compute=False``), then the manifest;
   existing cube: append new steps (manifest first, then the store's time axis) and mark steps
   whose items changed for refilling;
3. fill the regions not yet filled, in parallel, recording each one after it is written;
4. optionally export COGs, then write the STAC Item and Collection beside the store.

Re-running after a kill finishes the missing regions; re-running with nothing new writes
nothing at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datacubes._fill import (
    GridRecord,
    RegionJob,
    RegionResult,
    all_tile_keys,
    count_regions,
    plan_regions,
    run_regions,
)
from datacubes._grid import items_extent, lonlat_bbox, pixel_origins, same_grid, spec_geobox
from datacubes._manifest import Manifest, Step
from datacubes._resources import (
    check_resources,
    check_target_writable,
    dates_per_region,
    estimate,
)
from datacubes._spec import CubeSpec
from datacubes._spec_read import read_spec
from datacubes._stac_meta import cube_collection, cube_item, software_versions
from datacubes._steps import (
    SourceItems,
    StepPlan,
    compare_steps,
    default_search_bbox,
    plan_steps,
    search_source,
)
from datacubes._store import COLLECTION, ITEM, MANIFEST, CubeLocation, resolve_location
from datacubes._zarr import (
    append_template,
    encoding,
    rewrite_source_items,
    store_length,
    stored_hash,
    template,
    update_attrs,
    write_template,
)
from lab import ConfigurationError, EarthLabError

_SAVES_PER_RUN = 100  # the manifest is saved after every 1 % of the regions of a run...
_SAVE_AT_LEAST = 30.0  # ... and at least every 30 s, so a kill loses little and saves stay O(n)


class TargetConflictError(ConfigurationError):
    """The target holds another cube (or other data); pass ``overwrite=True`` to replace it."""


class IncompleteBuildError(EarthLabError):
    """Some regions could not be filled; ``.report`` says which, re-running resumes."""

    def __init__(self, message: str, report: BuildReport):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    name: str
    """Cube name."""
    url: str
    """Zarr store URL."""
    spec_hash: str
    """Hash of the spec."""
    steps: int
    """Time steps of the cube."""
    steps_added: int
    """Steps appended by this run (all of them for a new cube)."""
    steps_refilled: int
    """Stored steps rewritten because their source items changed."""
    regions_total: int
    """Regions of the whole cube."""
    regions_written: int
    """Regions written by this run."""
    regions_skipped: int
    """Regions already filled by an earlier run."""
    failed: Mapping[str, str] = field(default_factory=dict)
    """Regions that could not be filled, with the error."""
    writes: int = 0
    """Objects written by this run (template, regions, manifest saves, metadata, COGs)."""
    cogs_written: int = 0
    """COG files written by this run."""
    complete: bool = False
    """Whether every region of every step is filled."""
    seconds: float = 0.0
    """Wall time."""
    bytes_written: int = 0
    """Bytes of values written (uncompressed)."""
    notes: tuple[str, ...] = ()
    """What was left out or kept, and why."""
    sources: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    """The source items the build searched (pystac Items tagged with their centre)."""

    def summary(self) -> str:
        """Human summary, with how to resume when incomplete."""
        status = "complete" if self.complete else "INCOMPLETE"
        lines = [
            f"cube {self.name} at {self.url}: {status}",
            f"  {self.steps} time steps ({self.steps_added} added, {self.steps_refilled} refilled); "
            f"regions: {self.regions_written} written, {self.regions_skipped} already done, "
            f"{len(self.failed)} failed, of {self.regions_total}",
            f"  {self.writes} objects written, {self.bytes_written / 1e6:.1f} MB of values "
            f"in {self.seconds:.1f} s"
            + (f", {self.cogs_written} COGs" if self.cogs_written else ""),
        ]
        lines += [f"  note: {note}" for note in self.notes]
        for key, error in list(self.failed.items())[:5]:
            lines.append(f"  failed {key}: {error}")
        if len(self.failed) > 5:
            lines.append(f"  ... and {len(self.failed) - 5} more (see the manifest)")
        if not self.complete:
            lines.append(
                "  Fix or wait for the failing assets, then run the same build again "
                f"(earthlab cube build SPEC --target {self.url}): finished regions are skipped."
            )
        return "\n".join(lines)


def build(
    spec: str | os.PathLike[str] | Mapping[str, Any] | CubeSpec,
    *,
    target: str | None = None,
    workers: int | None = None,
    cog: bool = False,
    overwrite: bool = False,
    centres: Any = None,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    retries: int = 2,
    progress: bool = False,
    write_from_client: bool = False,
) -> BuildReport:
    """Build (or resume, or extend) the analysis-ready cube a spec describes.

    Parameters
    ----------
    spec : str, os.PathLike, mapping or CubeSpec
        A spec file, the name of a shipped spec (``thau-lagoon-sample``), or a spec.
    target : str, optional
        Zarr URL overriding the spec's (``s3://bucket/cubes/name.zarr`` or a path ending in
        ``.zarr``). S3 credentials come from the centre whose ``storage.url`` holds it.
    workers : int, optional
        Regions filled at once (threads); default: the number of CPUs, at most 4.
    cog : bool
        Also export one COG per band and time step beside the store (``<name>.cog/``).
    overwrite : bool
        Replace a target built from another spec (or holding other data).
    centres : lab.CentreSet or str, optional
        The federation to search (default: ``$EARTHLAB_CENTRES``, else the sample).
    client : dask.distributed.Client, optional
        Fill regions on this Dask cluster instead of local threads.
    storage_options : mapping, optional
        fsspec options for the target, overriding the centre's.
    retries : int
        Further attempts for a region whose assets fail to read (or whose write fails).
    progress : bool
        Show a progress bar on standard error.
    write_from_client : bool
        With ``client``: its workers compute the regions and this process writes them, so
        the workers get no credentials of the store and need no route to it (a cluster next
        to the data, a store elsewhere); each region's values travel to this process.

    Returns
    -------
    BuildReport
        What was done; ``report.complete`` is True.

    Raises
    ------
    IncompleteBuildError
        Some regions failed after retries (``.report`` lists them, the manifest keeps them);
        running the build again resumes.
    TargetConflictError
        The target was built from another spec and ``overwrite`` is False.
    lab.CatalogError, lab.NoItemsError
        The source could not be searched completely, or holds no item.
    datacubes.SpecError
        The spec is invalid.
    """
    started = time.monotonic()
    spec = read_spec(spec)
    if not (isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0):
        raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
    if workers is not None and not (
        isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1
    ):
        raise ConfigurationError(
            f"workers must be an integer >= 1 (regions filled at once), got {workers!r}"
        )
    if target is not None:
        if not isinstance(target, str | os.PathLike):
            raise ConfigurationError(
                f"target must be a path or URL ending in .zarr, got {target!r} "
                f"({type(target).__name__})"
            )
        target = os.fspath(target)
    location = resolve_location(
        target or spec.target.url,
        name=spec.name,
        centre=None if target else spec.target.centre,
        centres=centres,
        storage_options=storage_options,
    )
    check_target_writable(location.url, "target" if target else "target.url")
    workers = workers or min(4, os.cpu_count() or 1)
    if not spec.grid.tile:  # the grid is known before searching: refuse a cube too big at once
        shape = spec_geobox(spec.grid).shape
        check_resources(
            spec,
            estimate(spec, (shape[0], shape[1]), 1),
            location.url,
            workers,
            local_fill=client is None,
        )
    run = _Run(spec, location, workers, client, retries, progress, write_from_client)
    return run.execute(centres, cog=cog, overwrite=overwrite, started=started)


class _Run:
    """State of one build run."""

    def __init__(
        self,
        spec: CubeSpec,
        location: CubeLocation,
        workers: int,
        client: Any,
        retries: int,
        progress: bool,
        write_from_client: bool = False,
    ):
        self.spec = spec
        self.write_from_client = write_from_client
        self.location = location
        self.workers = workers
        self.client = client
        self.retries = retries
        self.progress = progress
        self.writes = 0
        self.notes: list[str] = []
        self.software = software_versions()
        self.replace = False  # overwrite: remove the old cube before writing the new one

    def _check_resources(self, plan: StepPlan, grid: GridRecord, manifest: Manifest | None) -> None:
        """Refuse (SpecError) a cube whose regions or new steps cannot fit; note what wasn't checked."""
        spec = self.spec
        new_steps = len(plan.steps) - (len(manifest.steps) if manifest is not None else 0)
        stored = encoding(spec, plan.variables)
        dtypes = {name: str(stored[name]["dtype"]) for name in plan.variables}
        dates = [  # a composite loads every date of its periods; a step of dates loads one
            len({str(plan.items[i].datetime) for i in step.items if i in plan.items}) or 1
            if spec.composite is not None
            else 1
            for step in plan.steps
        ]
        figures = estimate(
            spec,
            (grid.shape[0], grid.shape[1]),
            max(new_steps, 0),
            dates_per_region=dates_per_region(plan.steps, spec.target.write_unit.time, dates)
            or None,
            stored_dtypes=dtypes,
        )
        self.notes += check_resources(
            spec, figures, self.location.url, self.workers, local_fill=self.client is None
        )

    # -- the whole run ---------------------------------------------------------------------

    def execute(self, centres: Any, *, cog: bool, overwrite: bool, started: float) -> BuildReport:
        spec, unit = self.spec, self.spec.target.write_unit
        manifest = self._open_target(overwrite)
        if manifest is not None:  # the grid the store was built on
            geobox = GridRecord.from_dict(manifest.grid).geobox
            found = search_source(spec, centres, default_search_bbox(spec, geobox))
        else:
            geobox, found = self._new_grid(centres)
        self.notes += found.notes
        plan = plan_steps(spec, found.items, geobox)
        grid = GridRecord.from_geobox(geobox)
        self._check_resources(plan, grid, manifest)  # before anything is written (or removed)
        added = refilled = 0
        if manifest is None:
            if self.replace:
                self.location.remove()
            manifest = self._create(plan, grid)
            added = len(plan.steps)
        else:
            self._restore_length(manifest, plan)
            added, refilled = self._update_steps(manifest, plan)
        shape = grid.shape
        regions = plan_regions(len(manifest.steps), shape, unit, manifest)
        total = count_regions(len(manifest.steps), shape, unit)
        skipped = total - len(regions)
        run_info = manifest.start_run(planned=len(regions), skipped=skipped, written=0, failed=0)
        failed: dict[str, str] = {}
        nbytes = self._fill(manifest, plan, grid, regions, run_info, failed)
        complete = not manifest.failed and not plan_regions(
            len(manifest.steps), shape, unit, manifest
        )
        changed = bool(regions) or added or refilled or manifest.complete != complete
        cogs = self._export_cogs(manifest, plan, grid) if cog and complete else 0
        if changed or cogs or self.location.read_meta(ITEM) is None:
            run_info["finished"] = _now()
            manifest.touch(complete)
            self._save(manifest, grid)
            self._write_metadata(manifest, plan, geobox, complete, cog_on=bool(manifest.cog_steps))
        report = BuildReport(
            name=spec.name,
            url=self.location.url,
            spec_hash=spec.hash,
            steps=len(manifest.steps),
            steps_added=added,
            steps_refilled=refilled,
            regions_total=total,
            regions_written=len(regions) - len(failed),
            regions_skipped=skipped,
            failed=dict(failed),
            writes=self.writes,
            cogs_written=cogs,
            complete=complete,
            seconds=time.monotonic() - started,
            bytes_written=nbytes,
            notes=tuple(self.notes),
            sources=tuple(found.items),
        )
        if not complete:
            raise IncompleteBuildError(report.summary(), report)
        return report

    # -- target ----------------------------------------------------------------------------

    def _open_target(self, overwrite: bool) -> Manifest | None:
        location = self.location
        document = location.read_meta(MANIFEST)
        exists = location.zarr_exists()
        if overwrite:  # removed once the new cube is known to fit (_check_resources)
            self.replace = exists or document is not None
            return None
        if document is not None:
            manifest = Manifest(document)
            if manifest.spec_hash != self.spec.hash:
                raise TargetConflictError(
                    f"{location.url} holds cube {document.get('name')!r} built from another spec "
                    f"(hash {manifest.spec_hash}, this spec is {self.spec.hash}): choose another "
                    "target or pass --overwrite (overwrite=True) to replace it"
                )
            if not document.get("template", True):
                return None  # killed while writing the template: write it again
            if not exists:
                raise TargetConflictError(
                    f"{location.url} is gone but its manifest remains in {location.meta_url}: "
                    "pass --overwrite to build the cube again"
                )
            return manifest
        if exists:
            stored = stored_hash(location)
            if stored != self.spec.hash:
                what = (
                    f"a cube of another spec (hash {stored})"
                    if stored
                    else "data not built by earthlab"
                )
                raise TargetConflictError(
                    f"{location.url} already holds {what}: choose another target or pass "
                    "--overwrite (overwrite=True) to replace it"
                )
        return None  # nothing there, or a template whose manifest was never written

    def _new_grid(self, centres: Any) -> tuple[Any, SourceItems]:
        """The grid of a new cube, and the items found for it.

        The spec's extent (its bounds or bbox, or the extent of the tile's items) on the items'
        own pixel grid when the assets of the cube's bands in its CRS at its resolution all
        lie on one (:func:`pixel_origins`): the cube copies their pixels, as
        :func:`datacubes.load` does. Otherwise (no such asset, or assets on several grids) on
        multiples of the resolution. Moved onto the items' grid, the cube reaches up to a pixel
        beyond the area first searched: unless the spec gives ``source.bbox``, the source is
        searched again over it, and the items' grid is kept only if every item found there
        lies on it too.
        """
        spec, grid = self.spec, self.spec.grid
        snapped = None if grid.tile else spec_geobox(grid)
        found = search_source(
            spec, centres, default_search_bbox(spec, snapped) if snapped is not None else None
        )
        extent = items_extent(found.items, str(grid.crs)) if grid.tile else None
        multiples = snapped if snapped is not None else spec_geobox(grid, extent)
        origin = self._items_origin(found)
        if origin is None:
            return multiples, found
        geobox = spec_geobox(grid, extent, origin)
        if snapped is None or spec.source.bbox is not None:
            return geobox, found  # the search area does not depend on the grid
        wider = search_source(spec, centres, lonlat_bbox(geobox))
        again = self._items_origin(wider)
        if again is None or not same_grid(again, origin, grid.resolution):
            return multiples, found
        return geobox, wider

    def _items_origin(self, found: SourceItems) -> tuple[float, float] | None:
        """A pixel corner of the items' common grid, if they share one off the multiples."""
        grid = self.spec.grid
        origins = pixel_origins(found.items, self.spec.bands, str(grid.crs), grid.resolution)
        if len(origins) > 1:
            corners = ", ".join(f"({x:.12g}, {y:.12g})" for x, y in origins[:3])
            self.notes.append(
                f"the items lie on {len(origins)} pixel grids in {grid.crs} at "
                f"{grid.resolution:g} (pixel corners {corners}"
                f"{' ...' if len(origins) > 3 else ''}): the cube's pixel edges are on "
                f"multiples of {grid.resolution:g}, pixels of items off that grid are resampled"
            )
            return None
        if not origins or same_grid(origins[0], (0.0, 0.0), grid.resolution):
            return None
        return origins[0]

    # -- steps -----------------------------------------------------------------------------

    def _create(self, plan: StepPlan, grid: GridRecord) -> Manifest:
        """Claim the target (manifest first), write the empty store, then record it."""
        spec = self.spec
        manifest = Manifest.new(
            name=spec.name,
            spec_hash=spec.hash,
            spec=spec.to_dict(),
            grid=grid.to_dict(),
            write_unit=spec.target.write_unit.as_dict(),
        )
        stored = encoding(spec, plan.variables)
        manifest.doc["variables"] = {name: str(stored[name]["dtype"]) for name in plan.variables}
        manifest.doc["template"] = False
        manifest.steps = list(plan.steps)
        self._save(manifest, grid)
        dataset = template(spec, plan.steps, plan.variables, grid, self.software)
        write_template(self.location, spec, dataset, plan.variables)
        self.writes += 1
        manifest.doc["template"] = True
        self._save(manifest, grid)
        return manifest

    def _restore_length(self, manifest: Manifest, plan: StepPlan) -> None:
        """Append to the store the steps the manifest has and the store lacks (killed append)."""
        stored = store_length(self.location)
        if stored < len(manifest.steps):
            grid = GridRecord.from_dict(manifest.grid)
            self._append(manifest.steps[stored:], plan, grid, stored)
        elif stored > len(manifest.steps):
            raise TargetConflictError(
                f"{self.location.url} has {stored} time steps but its manifest only "
                f"{len(manifest.steps)}: it was changed outside earthlab; pass --overwrite"
            )

    def _update_steps(self, manifest: Manifest, plan: StepPlan) -> tuple[int, int]:
        changes = compare_steps(manifest.steps, plan.steps)
        self.notes += changes.notes
        grid = GridRecord.from_dict(manifest.grid)
        if changes.refill:
            manifest.invalidate(changes.refill)
            for index, step in zip(changes.refill, changes.refill_steps, strict=True):
                manifest.steps[index] = step
            self._save(manifest, grid)
            self.writes += rewrite_source_items(self.location, manifest.steps, changes.refill)
        if changes.append:
            start = len(manifest.steps)
            manifest.steps = [*manifest.steps, *changes.append]
            self._save(manifest, grid)  # first the manifest, then the store (see _restore_length)
            self._append(list(changes.append), plan, grid, start)
        return len(changes.append), len(changes.refill)

    def _append(self, steps: list[Step], plan: StepPlan, grid: GridRecord, start: int) -> None:
        dataset = template(self.spec, steps, plan.variables, grid, self.software, start)
        append_template(self.location, dataset)
        self.writes += 1

    # -- regions ---------------------------------------------------------------------------

    def _fill(
        self,
        manifest: Manifest,
        plan: StepPlan,
        grid: GridRecord,
        regions: list[Any],
        run_info: dict[str, Any],
        failed: dict[str, str],
    ) -> int:
        jobs = [self._job(manifest, plan, grid, region) for region in regions]
        last_save = [time.monotonic()]
        unsaved = [0]
        batch = max(1, len(jobs) // _SAVES_PER_RUN)
        nbytes = [0]

        def on_result(job: RegionJob, result: RegionResult) -> None:
            if result.ok:
                manifest.mark_filled(job.region)
                run_info["written"] += 1
                nbytes[0] += result.nbytes
                self.writes += 1
            else:
                items = sorted({i.id for i in job.items})
                manifest.mark_failed(job.region, result.error, result.attempts, items)
                run_info["failed"] += 1
                failed[job.region.key] = result.error
            unsaved[0] += 1
            if unsaved[0] >= batch or time.monotonic() - last_save[0] >= _SAVE_AT_LEAST:
                self._save(manifest, grid)
                last_save[0] = time.monotonic()
                unsaved[0] = 0

        if jobs:
            run_regions(
                jobs,
                workers=self.workers,
                client=self.client,
                on_result=on_result,
                progress=self.progress,
                write_from_client=self.write_from_client,
            )
            self._save(manifest, grid)
        return nbytes[0]

    def _job(self, manifest: Manifest, plan: StepPlan, grid: GridRecord, region: Any) -> RegionJob:
        steps = tuple(manifest.steps[region.t[0] : region.t[1]])
        ids = sorted({i for s in steps for i in s.items})
        missing = [i for i in ids if i not in plan.items]
        if missing:  # stored step whose items left the catalogue, yet not filled
            raise ConfigurationError(
                f"region {region.key} needs items no longer in the catalogue ({', '.join(missing[:3])}): "
                "rebuild the cube with --overwrite"
            )
        mask = self.spec.cloud_mask
        return RegionJob(
            region=region,
            steps=steps,
            items=tuple(plan.items[i] for i in ids),
            bands=self.spec.bands,
            variables={name: info["dtype"] for name, info in plan.variables.items()},
            grid=grid,
            url=self.location.url,
            storage_options=dict(self.location.storage_options),
            mask=list(mask) if isinstance(mask, tuple) else mask,
            composite=self.spec.composite,
            retries=self.retries,
        )

    # -- outputs ---------------------------------------------------------------------------

    def _save(self, manifest: Manifest, grid: GridRecord) -> None:
        unit = self.spec.target.write_unit
        self.location.write_meta(MANIFEST, manifest.to_dict(all_tile_keys(grid.shape, unit)))
        self.writes += 1

    def _export_cogs(self, manifest: Manifest, plan: StepPlan, grid: GridRecord) -> int:
        from datacubes._cog import export_cogs, pending_cog_steps

        pending = pending_cog_steps(manifest)
        if not pending:
            return 0
        written = export_cogs(self.location, manifest, pending, list(plan.variables), self.workers)
        self.writes += written
        self._save(manifest, grid)
        return written

    def _write_metadata(
        self, manifest: Manifest, plan: StepPlan, geobox: Any, complete: bool, cog_on: bool
    ) -> None:
        from datacubes._cog import cog_assets

        spec = self.spec
        stored = manifest.doc.get("variables", {})
        variables = {
            name: {**info, "stored_dtype": stored.get(name, info["dtype"])}
            for name, info in plan.variables.items()
        }
        endpoint = (self.location.storage_options.get("client_kwargs") or {}).get("endpoint_url")
        previous = self.location.read_meta(ITEM)
        item = cube_item(
            spec,
            url=self.location.url,
            endpoint=endpoint,
            geobox=geobox,
            steps=manifest.steps,
            variables=variables,
            complete=complete,
            software=self.software,
            cogs=cog_assets(self.location, manifest, list(plan.variables)) if cog_on else None,
            created=(previous or {}).get("properties", {}).get("created"),
        )
        self.location.write_meta(ITEM, item)
        self.location.write_meta(COLLECTION, cube_collection(item, spec, manifest.steps))
        self.writes += 2
        if update_attrs(self.location, spec, geobox, manifest.steps, self.software):
            self.writes += 1


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
