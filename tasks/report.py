"""Reporting: the run's table and markdown artifacts, quicklooks, and the same report on disk.

Per run, :func:`report_run` creates

- a **table artifact**: one row per product (product, status, cloud %, AOT, WV,
  seconds, output href, error);
- a **markdown artifact**: the headline, the failures with their reasons, and a
  quicklook of each finished product (the product's own quicklook, the ``thumbnail``
  asset of its STAC item, scaled down and embedded as a data URI, so the Prefect UI
  shows it without access to the output storage);

and writes ``report.md`` (linking the products' quicklooks) and ``summary.json``
into ``{output_root}/reports/{UTC time}_{flow run name}/``, which outlives the
Prefect database. During long runs the flows also keep a progress artifact
(:class:`ProgressArtifact`).

Reports hold no credentials: hrefs and error messages are masked
(:func:`redacted_summary`), and the report files are written with mode 0640 (owner
read-write, group read, nothing for others; the report folder 0750), whatever the umask.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from sen2core.redact import redact_text, redact_url
from tasks.logs import forward_logs
from tasks.models import ProductOutcome, RunSummary
from tasks.publish import find_stac_item

log = logging.getLogger(__name__)

__all__ = ["REPORT_DIR_MODE", "REPORT_FILE_MODE", "ProgressArtifact", "artifact_key", "product_quicklook",
           "redacted_summary", "render_markdown", "report_run", "table_rows"]  # fmt: skip

#: Quicklooks embedded in the markdown artifact at most (the report on disk links every one).
MAX_EMBEDDED_QUICKLOOKS = 16
#: Width of the embedded quicklooks (the products' own are larger; the artifact must stay small).
THUMBNAIL_PX = 320
#: Mode of the report files and of their folder: readable by the owner and the group only.
REPORT_FILE_MODE = 0o640
REPORT_DIR_MODE = 0o750


def redacted_summary(summary: RunSummary) -> RunSummary:
    """``summary`` with credentials masked in every href, path and error message (:mod:`sen2core.redact`)."""

    def text(value: str | None) -> str | None:
        return None if value is None else redact_text(value)

    outcomes = [o.model_copy(update={"l1c_href": redact_url(o.l1c_href), "error": text(o.error),
                                     "output_dir": text(o.output_dir)}) for o in summary.outcomes]  # fmt: skip
    return summary.model_copy(
        update={
            "outcomes": outcomes,
            "output_root": redact_text(summary.output_root),
            "collection": text(summary.collection),
            "report": text(summary.report),
        }
    )


def _write_private(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` with mode :data:`REPORT_FILE_MODE` (also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, REPORT_FILE_MODE)
    with open(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), REPORT_FILE_MODE)
        f.write(content)


def artifact_key(text: str) -> str:
    """A valid artifact key (lowercase letters, digits and dashes) from ``text``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-") or "sen2core"


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_rows(outcomes: Iterable[ProductOutcome]) -> list[dict[str, Any]]:
    """Rows of the table artifact."""
    return [
        {
            "product": o.product_id,
            "status": o.status,
            "cloud %": _fmt(o.cloud_cover, 1),
            "AOT": _fmt(o.aot, 3),
            "WV (cm)": _fmt(o.water_vapour, 2),
            "seconds": _fmt(o.seconds, 1),
            "output": o.output_dir or "",
            "error": o.error or "",
        }  # fmt: skip
        for o in outcomes
    ]


def product_quicklook(output_dir: str | Path) -> Path | None:
    """The quicklook PNG a finished product carries: its STAC item's ``thumbnail`` asset.

    Without a STAC item (another layout), a ``*_QL.png`` in the folder, or None.
    """
    folder = Path(output_dir)
    item = find_stac_item(folder)
    if item is not None:
        try:
            assets = json.loads(item.read_text(encoding="utf-8")).get("assets", {})
        except (OSError, ValueError):
            assets = {}
        for key, asset in assets.items():
            if key == "thumbnail" or "thumbnail" in asset.get("roles", ()):
                path = (item.parent / str(asset["href"])).resolve()
                if path.is_file():
                    return path
    found = sorted(folder.glob("*_QL.png"))
    return found[0] if found else None


def thumbnail_data_uri(png: str | Path, width: int = THUMBNAIL_PX) -> str:
    """A ``data:`` URI of ``png`` scaled down to ``width`` pixels (embeddable in a markdown artifact)."""
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
    if rgb.width > width:
        rgb = rgb.resize((width, max(1, round(rgb.height * width / rgb.width))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_markdown(summary: RunSummary, images: dict[str, str], run_name: str | None = None) -> str:
    """The run report in markdown; ``images`` maps product ids to an image source (data URI or path)."""
    lines = [f"# sen2core {summary.flow}" + (f" — {run_name}" if run_name else ""), ""]
    lines.append(f"**{summary.headline()}**")
    lines.append("")
    if summary.window is not None:
        lines.append(f"- sensing window: `{summary.window}`")
    lines.append(f"- output root: `{summary.output_root}`")
    if summary.collection:
        lines.append(f"- STAC collection: `{summary.collection}`")
    lines.append("")
    failed = summary.failed
    if failed:
        lines += ["## Failed", "", "| product | error |", "|---|---|"]
        lines += [f"| `{o.product_id}` | {(o.error or '').replace('|', '/')} |" for o in failed]
        lines.append("")
    finished = [o for o in summary.outcomes if o.status != "failed"]
    if finished:
        lines += ["## Products", "", "| quicklook | product | status | cloud % | AOT | WV (cm) | seconds |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for o in finished:
            src = images.get(o.product_id)
            img = f"![{o.product_id}]({src})" if src else ""
            lines.append(f"| {img} | `{o.l2a_id or o.product_id}` | {o.status} | {_fmt(o.cloud_cover, 1)} | "
                         f"{_fmt(o.aot, 3)} | {_fmt(o.water_vapour, 2)} | {_fmt(o.seconds, 1)} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _run_name() -> tuple[str, str]:
    """(flow run name, flow run id) of the current run, or placeholders outside one."""
    from prefect.runtime import flow_run

    return str(flow_run.name or "local"), str(flow_run.id or "")


@task(name="report", cache_policy=NO_CACHE)
def report_run(summary: RunSummary, report_root: str | None = None) -> RunSummary:
    """Write the run's report (disk and artifacts); return the summary with the report's path.

    Parameters
    ----------
    summary
        The run so far (outcomes, collection).
    report_root
        Where run reports go (default ``{output_root}/reports``).
    """
    with forward_logs():
        name, run_id = _run_name()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = Path(report_root or Path(summary.output_root) / "reports") / f"{stamp}_{artifact_key(name)}"
        folder.mkdir(parents=True, exist_ok=True, mode=REPORT_DIR_MODE)
        folder.chmod(REPORT_DIR_MODE)
        # What follows (files, artifacts, the returned summary the flow ends with) is masked.
        summary = redacted_summary(summary)
        links: dict[str, str] = {}
        embedded: dict[str, str] = {}
        for o in summary.outcomes:
            ql = product_quicklook(o.output_dir) if o.output_dir and o.status != "failed" else None
            if ql is None:
                continue
            links[o.product_id] = ql.as_uri()
            if len(embedded) < MAX_EMBEDDED_QUICKLOOKS:
                try:
                    embedded[o.product_id] = thumbnail_data_uri(ql)
                except (OSError, ValueError) as exc:  # a broken quicklook must not fail the report
                    log.warning("%s: quicklook not embedded (%s)", o.product_id, exc)
        summary = summary.model_copy(update={"report": str(folder / "report.md")})
        _write_private(folder / "report.md", render_markdown(summary, links, name))
        _write_private(folder / "summary.json", summary.model_dump_json(indent=1))

        key = artifact_key(f"sen2core-{summary.flow}")
        create_table_artifact(table=table_rows(summary.outcomes), key=f"{key}-products",
                              description=f"{summary.headline()} ({name})")  # fmt: skip
        create_markdown_artifact(markdown=render_markdown(summary, embedded, name), key=f"{key}-report",
                                 description=f"Report of {name} ({run_id}): {summary.headline()}")  # fmt: skip
        log.info("report: %s", folder / "report.md")
    return summary


class ProgressArtifact:
    """A progress artifact (0-100 %) updated as products finish; a no-op outside a Prefect run."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.done = total, 0
        self.id: UUID | None = None
        try:
            self.id = create_progress_artifact(progress=0.0 if total else 100.0, description=description)  # type: ignore[assignment]
        except Exception as exc:  # noqa: BLE001 - progress display must never stop processing
            log.debug("no progress artifact: %s", exc)

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more finished products."""
        from prefect.artifacts import update_progress_artifact

        self.done += n
        if self.id is not None and self.total:
            try:
                update_progress_artifact(self.id, progress=round(100.0 * self.done / self.total, 1))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                log.debug("progress artifact not updated: %s", exc)
