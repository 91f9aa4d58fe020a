"""Check a project directory after the newcomer's ``make run`` (run by tests/e2e/newcomer.sh).

1. Every dataset output of ``full_cycle`` that is stored (everything but ``MemoryDataset``),
   resolved through the project's own catalog (dataset factories included), exists.
   The list is derived from the pipeline and the catalog, never written here.
2. Every HTML report among those outputs is self-contained: each ``<img src>`` is a
   ``data:image/png;base64`` URI that decodes to a valid PNG with a non-zero size, and no
   element loads anything from the network or the disk.
3. Headless Chromium renders the report: a screenshot is taken and must not be blank
   (enough distinct colours and non-white pixels), and the DOM Chromium builds holds as
   many ``<img>`` elements as the file.

Usage: ``python tests/e2e/check_artifacts.py PROJECT_DIR --screenshot OUT.png``
(with the project's own interpreter, so the project's package and Kedro are imported).
Exit status 0 = all good; otherwise every problem found is listed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=5000",
]


def stored_outputs(project: Path) -> dict[str, object]:
    """{dataset name: dataset} for every non-memory output of full_cycle."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.io import MemoryDataset

    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        outputs = sorted(pipelines["full_cycle"].all_outputs())
        found = {}
        for name in outputs:
            dataset = catalog.get(name)
            if dataset is None:
                raise SystemExit(
                    f"full_cycle output {name!r} is not declared in the catalog (it would be a MemoryDataset)"
                )
            if not isinstance(dataset, MemoryDataset):
                found[name] = dataset
        return found


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str | None] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src"))
        for key in ("src", "href"):
            value = attrs.get(key)
            if value and tag in {"img", "script", "link", "iframe", "source", "video", "audio"}:
                if not value.startswith("data:") and not value.startswith("#"):
                    self.external.append(f"<{tag} {key}={value[:80]!r}>")


def check_png(data: bytes) -> tuple[int, int]:
    """Return (width, height) of a valid PNG; raise ValueError otherwise."""
    from PIL import Image

    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG (bad signature)")
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        return image.size


def check_report(path: Path) -> tuple[list[str], int]:
    problems: list[str] = []
    parser = _Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    if not parser.images:
        problems.append(f"{path}: the report holds no <img>")
    for i, src in enumerate(parser.images):
        prefix = "data:image/png;base64,"
        if not src or not src.startswith(prefix):
            problems.append(f"{path}: <img> #{i} is not an embedded PNG: {str(src)[:60]!r}")
            continue
        try:
            width, height = check_png(base64.b64decode(src[len(prefix) :], validate=True))
        except (ValueError, binascii.Error, OSError) as exc:
            problems.append(f"{path}: <img> #{i} does not decode to a PNG: {exc}")
            continue
        if width == 0 or height == 0:
            problems.append(f"{path}: <img> #{i} is {width}x{height}")
    problems += [f"{path}: loads an external resource {ref}" for ref in parser.external]
    return problems, len(parser.images)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("headless Chromium not found: apt-get install -y chromium")


def render(report: Path, screenshot: Path, n_images: int) -> list[str]:
    from PIL import Image

    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rsc-chromium-") as profile:
        flags = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        url = report.resolve().as_uri()
        shot = subprocess.run(
            [*flags, "--window-size=1280,9000", f"--screenshot={screenshot}", url],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if shot.returncode != 0 or not screenshot.is_file():
            return [f"chromium screenshot failed ({shot.returncode}): {shot.stderr[-1500:]}"]
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=False
        )
    if dom.returncode != 0:
        problems.append(f"chromium --dump-dom failed ({dom.returncode}): {dom.stderr[-1500:]}")
    else:
        rendered = _Elements()
        rendered.feed(dom.stdout)
        if len(rendered.images) != n_images:
            problems.append(f"chromium's DOM has {len(rendered.images)} <img>, the file {n_images}")
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        n_colours = len(colours) if colours is not None else 1 << 20
        non_white = (
            sum(count for count, colour in (colours or []) if min(colour) < 240)
            if colours
            else rgb.size[0] * rgb.size[1]
        )
    share = non_white / (rgb.size[0] * rgb.size[1])
    print(f"screenshot {screenshot}: {rgb.size[0]}x{rgb.size[1]}, {n_colours} colours, {share:.1%} non-white")
    if n_colours < 16 or share < 0.02:
        problems.append(f"the screenshot looks blank ({n_colours} colours, {share:.1%} non-white pixels)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args(argv)
    project = args.project.resolve()
    os.chdir(project)  # relative catalog paths resolve against the project

    problems: list[str] = []
    outputs = stored_outputs(project)
    reports: list[Path] = []
    for name, dataset in outputs.items():
        ok = dataset.exists()
        print(f"{'ok     ' if ok else 'MISSING'} {name}: {dataset}")
        if not ok:
            problems.append(f"full_cycle output {name} is missing ({dataset})")
        filepath = getattr(dataset, "_filepath", None)
        if ok and filepath is not None and str(filepath).endswith(".html"):
            reports.append(project / str(filepath))
    print(f"{len(outputs)} stored full_cycle outputs checked")
    if not reports:
        problems.append("no HTML report among the full_cycle outputs")
    for i, report in enumerate(reports):
        report_problems, n_images = check_report(report)
        problems += report_problems
        print(f"{report}: {n_images} embedded images")
        shot = args.screenshot if i == 0 else args.screenshot.with_name(f"{args.screenshot.stem}_{i}.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        problems += render(report, shot, n_images)

    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
