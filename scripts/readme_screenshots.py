"""Re-make the README's app screenshots from a small real run.

    python scripts/readme_screenshots.py [--store DIR] [--out docs/screenshots]

Three submissions go into a fresh local store and are evaluated by the real worker under the
service's protocol (``GENBENCH_PROTOCOL``: the default SevenNet-l3i5 + MP-20, or ``chgnet``,
which the current screenshots show; with CHGNet about 2-4 min each on 2 CPU cores, SevenNet-l3i5
about 3.5x that): the example submission (21
MatterGen base samples), 10 Materials Project structures (the 4 first of 24-32 sites, larger
than any MP-20 cell) and 12 Alexandria structures. Then the app is started on that store and
headless Debian chromium takes leaderboard.png, plots.png, model.png, candidate.png and
compare.png. An existing ``--store`` with finished submissions is reused as it is.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def submit_and_evaluate(store_dir: Path) -> None:
    from evaluator.data import DataDir
    from leaderboard.intake.example import EXAMPLE_META, build_example
    from leaderboard.store import open_store
    from leaderboard.intake.submissions import SubmissionPolicy, submit

    store = open_store(str(store_dir))
    policy = SubmissionPolicy(max_per_window=0)
    work = store_dir.parent / "uploads"
    work.mkdir(parents=True, exist_ok=True)
    built = build_example(out_dir=work)
    if built is None:
        raise SystemExit("the MatterGen paper archive is not in the data directory")
    submit(store, EXAMPLE_META, [built[0]], "mattergen-example", policy)
    data = DataDir()
    mp = data.path("structures/mp_sample")
    rows = list(csv.DictReader(open(mp / "metadata.csv")))
    picked = [r for r in rows if int(r["nsites"]) <= 8][:6] + [r for r in rows if 24 <= int(r["nsites"]) <= 32][:4]
    up = work / "mp"
    up.mkdir(parents=True, exist_ok=True)
    files = [Path(shutil.copy(mp / f"mp_{r['material_id']}.cif", up)) for r in picked]
    submit(store, {"model_name": "Materials Project sample (control)", "model_version": "known materials",
                   "training_set": "MP-20", "task": "unconditional", "relaxed_before_submission": True,
                   "relaxation_method": "DFT (Materials Project)",
                   "notes": "Control: 10 real MP materials (4 with more than 20 sites)"}, files, "control-mp", policy)
    al = work / "alexandria"
    al.mkdir(parents=True, exist_ok=True)
    files = [Path(shutil.copy(p, al)) for p in sorted(data.path("structures/alexandria_sample").glob("*.cif"))[:12]]
    submit(store, {"model_name": "Alexandria sample (control)", "model_version": "DFT-relaxed",
                   "training_set": "Alex-MP-20", "task": "unconditional", "relaxed_before_submission": True,
                   "relaxation_method": "DFT (Alexandria)", "notes": "Control: 12 Alexandria structures"},
           files, "control-alex", policy)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        subprocess.run([sys.executable, "-m", "leaderboard.worker", "--store", str(store_dir), "--work-dir",
                        str(store_dir.parent / "work"), "--poll", "0.5", "--once"], cwd=REPO, env=env, check=True)


def screenshots(store_dir: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from leaderboard.jobs.queue import FINISHED, list_jobs
    from leaderboard.ui import build_app, launch_kwargs
    from leaderboard.ui.shared_state import make_context

    ctx = make_context(str(store_dir))
    jobs = {j.model_name: j.id for j in list_jobs(ctx.store) if j.status == FINISHED}
    if len(jobs) < 2:
        raise SystemExit(f"need at least two finished submissions in {store_dir}, found {len(jobs)}")
    demo = build_app(ctx)
    demo.queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    url = f"http://127.0.0.1:{port}/"
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--use-angle=swiftshader",
                                               "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#leaderboard-table div[role=row][data-index]")
            page.screenshot(path=str(out / "leaderboard.png"), full_page=True)
            page.get_by_role("tab", name="Plots").click()
            page.wait_for_selector("#plot1 .js-plotly-plot .scatterlayer")
            page.screenshot(path=str(out / "plots.png"), full_page=True)
            first = next(iter(jobs.values()))
            page.goto(f"{url}?submission={first}")
            page.wait_for_selector("#candidate-structure .js-plotly-plot .gl-container canvas")
            page.wait_for_selector("#candidate-pd .js-plotly-plot .main-svg")
            page.wait_for_selector("#model-ptable .js-plotly-plot .main-svg")
            page.screenshot(path=str(out / "model.png"), full_page=True)
            page.evaluate("document.getElementById('candidate-details').scrollIntoView({block: 'start'})")
            page.screenshot(path=str(out / "candidate.png"))
            page.goto(url)
            page.get_by_role("tab", name="Compare").click()
            for name, jid in list(jobs.items())[:3]:
                page.locator("#compare-pick input").click()
                page.get_by_role("option", name=f"{name} · {jid}").click()
            page.keyboard.press("Escape")
            page.wait_for_selector("#compare-elements .js-plotly-plot .main-svg")
            page.screenshot(path=str(out / "compare.png"), full_page=True)
            browser.close()
    finally:
        demo.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--store", type=Path, help="a store to (re)use; default: a new temporary one")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = ap.parse_args()
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="genbench-shots-")) / "state"
    if not (store_dir / "results").exists():
        submit_and_evaluate(store_dir)
    screenshots(store_dir, args.out)
    print(f"screenshots in {args.out} from the store {store_dir}")


if __name__ == "__main__":
    main()
