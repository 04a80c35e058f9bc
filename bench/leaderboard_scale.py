"""How the leaderboard page scales with the number of finished submissions (issue 26 item 2).

For each N (``--n 20 200 2000``) it builds a local results store of N finished submissions
through the real publish path (``intake.submissions.submit`` -> ``jobs.queue.claim`` ->
``publishing.results.publish``, what the worker does), starts the app on it in a separate process,
and measures in headless Debian chromium (Playwright):

- ``html_bytes``: size of the first HTTP response of the page (the shell with anything
  embedded in it);
- ``first_paint_s``: from navigation to the first leaderboard row being visible (median
  of ``--repeats`` fresh browser contexts); ``shell_paint_s``: to the page's title being
  visible (the app's shell, before any data);
- ``rank_switch_s``: from picking another "Rank by" entry to the table's columns having
  changed (median of ``--repeats`` switches);
- ``model_switch_s``: from picking a submission in the model page's dropdown to its page
  showing that submission (median of ``--repeats`` picks): its text; its metrics table,
  figures and candidates follow in a second event. ``model_page_server_s``: the server's time for the
  whole page, ``model_head_server_s`` for its first part (in-process, with ``--reuse``);
- ``compact_table_px``: the width of the leaderboard table (default compact view) in a
  1,440 px wide window (a laptop screen);
- ``bare_shell_paint_s`` (once per run, same browser): the same measure of ``shell_paint_s`` for a
  bare Gradio app (one title and an empty table): the framework's own floor on this machine,
  which no leaderboard built on Gradio can beat; ``first_paint_s`` is also given as a multiple
  of it (``first_paint_x_bare``);
- ``build_s``/``publish_ms_first``/``publish_ms_last``: building the store. ``publish()``
  writes the whole leaderboard table (one parquet file) on every call, so its cost grows with
  N: above ``--bulk-above`` (default 100) the jobs are finished one by one (``jobs.queue.finish``
  with the summary and table, as ``publish`` commits them in the two-store layout) and made
  public by ONE ``publishing.dataset.sync_public`` (``sync_s``); ``publish_ms_at_n`` is then one
  more real ``publish()`` on the full store (the store holds N + 1 submissions when measured);
- ``load_s``: ``publishing.results.load_results_table`` on the built store (what the app does
  after every publish, before the next page can show the new table).

Summaries are synthetic but realistic: each is the real evaluator output in
``--template`` (default ``bench/data/scale_template``: ``python -m evaluator score`` on 3
MP-20 crystals, default protocol, on this machine) with the counts, rates, intervals and
scalar metrics varied per submission (a seeded per-model quality factor), under varied
model names and metadata. The per-structure table is the template's (3 rows).

Prints a table and writes JSON (``--out``, default ``bench/leaderboard_scale.json``).
Timings depend on the machine's load: note ``uptime`` beside them; compare runs made in
the same session only.

    .venv/bin/python bench/leaderboard_scale.py --n 20 200
    .venv/bin/python bench/leaderboard_scale.py --n 2000 --keep /tmp/lb2000   # keep the store
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "bench" / "data" / "scale_template"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MODELS = ("MatterGen", "DiffCSP", "CDVAE", "Chemeleon", "FlowMM", "CrystaLLM", "ADiT", "UniMat", "WyFormer",
          "SymmCD", "DiffCSP++", "MatterGPT", "CrystalFormer", "GNoME-gen", "OMatG")
TRAINING = ("MP-20", "Alex-MP-20", "LeMat-Bulk", "OMat24", "MPTrj", "Alexandria", "other")
WAIT_MS = 600_000  # a hang bound only
SWITCH_MS = 120_000  # a switch that takes longer fails the run (a hang, or an option that changes nothing)


# ---------------------------------------------------------------- synthetic summaries
def _vary(summary: dict, rng: random.Random) -> dict:
    """The template summary with its numbers varied consistently: every counted metric's count
    scaled by one quality factor (fractions and intervals recomputed), other numbers jittered."""
    out = copy.deepcopy(summary)
    n_sub = max(1, int(out.get("n_submitted") or 1))
    n_valid = max(1, int(out.get("n_valid") or n_sub))
    q = rng.uniform(0.2, 1.0)
    for fam, block in (out.get("metrics") or {}).items():
        if not isinstance(block, dict):
            continue
        for key in list(block):
            v = block[key]
            if key.endswith("_count") and isinstance(v, int | float) and not isinstance(v, bool):
                name = key[: -len("_count")]
                c = min(n_sub, max(0, round(v * q + rng.uniform(-0.5, 0.5))))
                block[key] = c
                if f"{name}_frac_submitted" in block:
                    block[f"{name}_frac_submitted"] = c / n_sub
                if f"{name}_frac_valid" in block:
                    block[f"{name}_frac_valid"] = min(1.0, c / n_valid)
            elif (isinstance(v, float) and not key.endswith(("_frac_submitted", "_frac_valid"))
                  and not key.endswith("_n")):
                block[key] = v * rng.uniform(0.7, 1.3)
        unc = (out.get("uncertainty") or {}).get(fam)
        if isinstance(unc, dict):
            for key, iv in unc.items():
                val = block.get(key)
                if isinstance(iv, dict) and isinstance(val, int | float) and not isinstance(val, bool):
                    half = rng.uniform(0.02, 0.2)
                    iv["lo"], iv["hi"] = max(0.0, val - half), min(1.0, val + half)
    return out


def _meta(i: int, rng: random.Random) -> dict:
    base = MODELS[i % len(MODELS)]
    meta = {"model_name": f"{base}-{i:04d}", "model_version": f"{1 + i // len(MODELS)}.{rng.randint(0, 9)}",
            "training_set": rng.choice(TRAINING), "task": rng.choice(("unconditional", "conditional")),
            "relaxed_before_submission": rng.random() < 0.3}
    if meta["training_set"] == "other":
        meta["training_set_other"] = "in-house crystals"
    if meta["task"] == "conditional":
        meta["condition"] = rng.choice(("band gap > 1 eV", "space group", "chemical system Li-Fe-P-O"))
    if meta["relaxed_before_submission"]:
        meta["relaxation_method"] = rng.choice(("DFT (PBE)", "MatterSim", "CHGNet"))
    return meta


def _upload(folder: Path, i: int) -> Path:
    """One small CIF with bytes (and structure) unique to submission ``i`` (duplicates are refused)."""
    a = 5.0 + 0.0005 * i
    p = folder / f"gen_{i:05d}.cif"
    p.write_text(f"data_gen{i}\n_symmetry_space_group_name_H-M 'P 1'\n_cell_length_a {a:.4f}\n"
                 f"_cell_length_b {a:.4f}\n_cell_length_c {a:.4f}\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
                 "_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
                 "_atom_site_fract_y\n_atom_site_fract_z\nNa1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n")
    return p


def build_store(root: Path, n: int, template: Path, seed: int = 0, bulk: bool = False) -> dict:
    """A store at ``root`` with ``n`` finished submissions published through the real path
    (``bulk``: finished one by one, made public by one ``sync_public``)."""
    from leaderboard.jobs.queue import claim
    from leaderboard.publishing.results import publish
    from leaderboard.store import open_store
    from leaderboard.intake.submissions import SubmissionPolicy, submit

    summary = json.loads((template / "summary.json").read_text())
    table = (template / "structures.parquet").read_bytes()
    store = open_store(str(root))
    uploads = root.parent / f"{root.name}-uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    policy = SubmissionPolicy(max_per_window=0)
    times = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        job = submit(store, _meta(i, rng), [_upload(uploads, i)], f"user-{i % 37}", policy,
                     protocol=(summary.get("protocol") or {}).get("id", ""))
        claimed = claim(store, "bench-worker", 600)
        assert claimed is not None and claimed.id == job.id, (claimed, job.id)
        if bulk:
            _finish_unpublished(store, claimed, _vary(summary, rng), table)
        else:
            publish(store, claimed, _vary(summary, rng), table, "bench-worker")
        times.append(time.perf_counter() - t)
        if (i + 1) % max(1, n // 10) == 0:
            print(f"  published {i + 1}/{n} ({time.perf_counter() - t0:.0f} s; last {times[-1] * 1e3:.0f} ms)",
                  flush=True)
    k = max(1, min(10, n // 10))
    out = {"build_s": 0.0, "bulk": bulk, "publish_ms_first": 1e3 * statistics.median(times[:k]),
           "publish_ms_last": 1e3 * statistics.median(times[-k:])}
    if bulk:
        from leaderboard.publishing.dataset import sync_public

        t = time.perf_counter()
        shown = sync_public(store)
        out["sync_s"] = time.perf_counter() - t
        assert len(shown) == n, (len(shown), n)
        # what one more publish() (the worker's path) costs on a store of this size
        t = time.perf_counter()
        job = submit(store, _meta(n, rng), [_upload(uploads, n)], "user-extra", policy,
                     protocol=(summary.get("protocol") or {}).get("id", ""))
        claimed = claim(store, "bench-worker", 600)
        assert claimed is not None and claimed.id == job.id
        publish(store, claimed, _vary(summary, rng), table, "bench-worker")
        out["publish_ms_at_n"] = 1e3 * (time.perf_counter() - t)
    out["build_s"] = time.perf_counter() - t0
    out["load_s"] = load_seconds(root)
    shutil.rmtree(uploads, ignore_errors=True)
    return out


def publish_probe(root: Path, template: Path) -> float:
    """Milliseconds of one more real ``publish()`` on a copy of the store at ``root`` (the
    copy is removed): what the worker's next publish costs at that size, with this code."""
    from leaderboard.intake.submissions import SubmissionPolicy, submit
    from leaderboard.jobs.queue import claim
    from leaderboard.publishing.results import publish
    from leaderboard.store import open_store

    summary = json.loads((template / "summary.json").read_text())
    table = (template / "structures.parquet").read_bytes()
    work = Path(tempfile.mkdtemp(prefix="lb-probe-"))
    try:
        copy = work / "store"
        shutil.copytree(root, copy)
        store = open_store(str(copy))
        rng = random.Random(1)
        t = time.perf_counter()
        job = submit(store, _meta(10**6, rng), [_upload(work, 10**6)], "user-probe", SubmissionPolicy(max_per_window=0),
                     protocol=(summary.get("protocol") or {}).get("id", ""))
        claimed = claim(store, "bench-worker", 600)
        assert claimed is not None and claimed.id == job.id
        publish(store, claimed, _vary(summary, rng), table, "bench-worker")
        return 1e3 * (time.perf_counter() - t)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_seconds(root: Path) -> float:
    """How long the app's read of the results table takes on the store at ``root`` (median of 3)."""
    from leaderboard.publishing.results import load_results_table
    from leaderboard.store import open_store

    times = []
    for _ in range(3):
        t = time.perf_counter()
        load_results_table(open_store(str(root)))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def model_page_seconds(root: Path) -> dict[str, float]:
    """Server time of the model page (``ui.model_tab.show_page``) and, where the code splits it,
    of its two parts (``page_head``, then ``page_body``: metrics table, figures, candidates): medians over
    3 submissions after a warm-up (the first pick loads plotly's templates)."""
    from leaderboard.ui import model_tab
    from leaderboard.ui.shared_state import make_context

    ctx = make_context(str(root))
    ids = [i for _, i in model_tab.finished_choices(ctx)][:4]
    split = hasattr(model_tab, "page_head")  # (the tree before this split times show_page only)
    times: dict[str, list[float]] = {}
    for k, job_id in enumerate(ids):
        t = time.perf_counter()
        model_tab.show_page(ctx, job_id)
        parts = {"model_page_server_s": time.perf_counter() - t}
        if split:
            t = time.perf_counter()
            model_tab.page_head(ctx, job_id)
            parts["model_head_server_s"] = time.perf_counter() - t
        for name, seconds in parts.items():
            if k:
                times.setdefault(name, []).append(seconds)
    return {name: statistics.median(v) for name, v in times.items()}


def _finish_unpublished(store, job, summary: dict, table: bytes) -> None:
    """What ``publishing.dataset.publish`` commits with the FINISHED status in the two-store layout (the
    summary with its ``leaderboard`` block, the table), leaving the public rows to one
    ``publishing.dataset.sync_public`` for the whole store (``--bulk``)."""
    from leaderboard.jobs.queue import finish
    from leaderboard.store import dumps
    from leaderboard.store.layout import summary_path, table_path
    from leaderboard.intake.submission_meta import load_meta

    meta = load_meta(store, job.id)

    def record(new) -> dict[str, bytes]:
        summary["leaderboard"] = {"submission_id": new.id, "attempt": new.attempts, "worker": "bench-worker",
                                  "published_at": new.finished_at, "metadata": meta,
                                  "protocol_queued": new.protocol or None, "rescore_of": new.source or None}
        return {summary_path(new.id): dumps(summary), table_path(new.id): table}

    finish(store, job.id, "bench-worker", extra_writes=record)


# ---------------------------------------------------------------- the app, measured
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_bare(port: int) -> None:
    """A bare Gradio app (a title and an empty table), until killed: the framework's floor."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("# A bare Gradio app", elem_id="title")
        gr.Dataframe(elem_id="leaderboard-table")
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True)


def serve(store: str, port: int) -> None:
    """The app alone on ``store`` (no worker), until killed."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from leaderboard.ui import build_app, launch_kwargs
    from leaderboard.ui.shared_state import make_context

    demo = build_app(make_context(store))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True, **launch_kwargs())


def _start_app(store: Path | None) -> tuple[subprocess.Popen, str, float]:
    """The app on ``store`` (None: the bare Gradio app) in a process of its own."""
    port = _free_port()
    t0 = time.perf_counter()
    what = ["--serve-bare"] if store is None else ["--serve", str(store)]
    proc = subprocess.Popen([sys.executable, __file__, *what, "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("the app did not answer")


WIDTH_JS = "() => { const t = document.querySelector('#leaderboard-table table'); return t ? t.scrollWidth : null; }"
HEADERS_JS = "() => [...document.querySelectorAll('#leaderboard-table thead th')].map(h => h.innerText).join('|')"


def _pick(page, input_sel: str, text: str) -> float:
    """Type ``text`` into a dropdown's filter, wait for its option, press Enter; returns the
    time of the key press (the page's own refresh redraws the list, so options are not clicked)."""
    box = page.locator(input_sel)
    box.click()
    box.press("Control+a")
    box.press("Backspace")
    page.keyboard.type(text)
    try:
        page.get_by_role("option").filter(has_text=text).first.wait_for(timeout=20_000)
    except Exception:
        print("    options now:", page.get_by_role("option").all_inner_texts()[:5], repr(box.input_value()), flush=True)
        raise
    t = time.perf_counter()
    page.keyboard.press("Enter")
    return t


def _model_option(page, k: int) -> str:
    """The submission id of the model dropdown's ``k``-th entry."""
    box = page.locator("#model-pick input")
    box.click()
    opts = page.get_by_role("option")
    opts.first.wait_for()
    label = opts.nth(k).get_attribute("aria-label") or opts.nth(k).inner_text()
    page.keyboard.press("Escape")
    return label.strip().split(" · ")[-1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _visit(browser, url: str, table: bool) -> tuple[float, float | None]:
    """One visit in a fresh browser context: (seconds to the page's title, to the first
    leaderboard row or None when ``table`` is false)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    t = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.locator("#title").first.wait_for(state="visible")
    shell = time.perf_counter() - t
    paint = None
    if table:
        page.locator("#leaderboard-table div[role=row][data-index]").first.wait_for(state="visible")
        paint = time.perf_counter() - t
    ctx.close()
    return shell, paint


def bare_shell_paint(repeats: int) -> float:
    """Median time to the title of the bare Gradio app (``serve_bare``), as ``measure`` times it."""
    from playwright.sync_api import sync_playwright

    proc, url, _ = _start_app(None)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            shells = [_visit(browser, url, table=False)[0] for _ in range(repeats)]
            browser.close()
    finally:
        _stop(proc)
    print(f"  a bare Gradio app's title: {statistics.median(shells):.2f} s (median of {shells})", flush=True)
    return statistics.median(shells)


def measure(url: str, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    with urllib.request.urlopen(url, timeout=120) as r:
        html_bytes = len(r.read())
    out: dict = {"html_bytes": html_bytes}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        paints, shells = [], []
        for _ in range(repeats):
            shell, paint = _visit(browser, url, table=True)
            assert paint is not None
            shells.append(shell)
            paints.append(paint)
            print(f"    first paint: {paint:.2f} s (the page's title: {shell:.2f} s)", flush=True)
        out["first_paint_s"] = statistics.median(paints)
        out["first_paint_all_s"] = paints
        out["shell_paint_s"] = statistics.median(shells)

        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.set_default_timeout(SWITCH_MS)
        page.goto(url, wait_until="commit")
        page.locator("#leaderboard-table div[role=row][data-index]").first.wait_for(state="visible")
        print("    page loaded", flush=True)
        # the compact view on a laptop screen (1,440 px): the table's full width
        out["compact_table_px"] = page.evaluate(WIDTH_JS)
        print(f"    compact table {out['compact_table_px']} px wide at 1440 px", flush=True)
        page.locator("#lb-rank input").click()
        page.get_by_role("option").first.wait_for()
        options = [t.strip() for t in page.get_by_role("option").all_inner_texts()]
        print(f"    {len(options)} Rank-by entries, e.g. {options[:3]!r}", flush=True)
        page.keyboard.press("Escape")
        out["rank_by_entries"] = len(options)
        switches = []
        for k in range(repeats):
            before = page.evaluate(HEADERS_JS)
            current = page.locator("#lb-rank input").input_value()
            label = [o for o in options if o != current and options.count(o) == 1][k]
            t = _pick(page, "#lb-rank input", label)
            try:
                page.wait_for_function(f"(b) => ({HEADERS_JS})() !== b", arg=before, polling="raf",
                                       timeout=SWITCH_MS)
            except Exception as exc:  # noqa: BLE001 - reported, the other measurements go on
                print(f"    rank by {label!r}: no change seen ({type(exc).__name__})", flush=True)
                continue
            switches.append(time.perf_counter() - t)
            print(f"    rank by {label!r}: {switches[-1]:.2f} s", flush=True)
        out["rank_switch_s"] = statistics.median(switches) if switches else None
        out["rank_switch_all_s"] = switches

        page.get_by_role("tab", name="Model page & downloads").click()
        pick = page.locator("#model-pick input")
        pick.wait_for(state="visible")
        models = []
        for k in range(repeats):
            sid = _model_option(page, k + 1)
            t = _pick(page, "#model-pick input", sid)
            page.wait_for_function("(sid) => { const m = document.querySelector('#model-meta');"
                                   " return m && m.offsetParent !== null && m.innerText.includes(sid); }",
                                   arg=sid, polling="raf", timeout=SWITCH_MS)
            models.append(time.perf_counter() - t)
            print(f"    model page {sid}: {models[-1]:.2f} s", flush=True)
        out["model_switch_s"] = statistics.median(models)
        out["model_switch_all_s"] = models
        browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[20, 200], help="store sizes (default 20 200)")
    p.add_argument("--template", type=Path, default=TEMPLATE, help="folder with summary.json + structures.parquet")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "leaderboard_scale.json")
    p.add_argument("--keep", type=Path, help="build the stores under this folder and keep them")
    p.add_argument("--bulk", action="store_true",
                   help="finish every job first, then make them public with one sync_public (fast for large N)")
    p.add_argument("--bulk-above", type=int, default=100,
                   help="use --bulk for N above this (publish() per job rewrites the whole table: O(N) each)")
    p.add_argument("--build-only", action="store_true", help="build the stores, measure nothing")
    p.add_argument("--reuse", action="store_true",
                   help="with --keep: measure a store already built there (store-<N>) instead of building it")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        serve(a.serve, a.port)
        return 0
    if a.serve_bare:
        serve_bare(a.port)
        return 0
    load = os.getloadavg()
    rows = []
    bare = None if a.build_only else bare_shell_paint(a.repeats)
    base = a.keep or Path(tempfile.mkdtemp(prefix="lb-scale-"))
    try:
        for n in a.n:
            root = base / f"store-{n}"
            if a.reuse and a.keep is not None and (root / "built.json").exists():
                print(f"N={n}: measuring the store built before at {root}", flush=True)
                row = {"n": n, **json.loads((root / "built.json").read_text()), "reused": True,
                       "load_s": load_seconds(root), "publish_ms_at_n": publish_probe(root, a.template),
                       **model_page_seconds(root)}
            else:
                if root.exists():
                    shutil.rmtree(root)
                print(f"N={n}: building the store through the publish path …", flush=True)
                row = {"n": n, **build_store(root, n, a.template, bulk=a.bulk or n > a.bulk_above)}
                (root / "built.json").write_text(json.dumps(row))
            if not a.build_only:
                proc, url, start_s = _start_app(root)
                try:
                    row["app_start_s"] = start_s
                    row.update(measure(url, a.repeats))
                finally:
                    _stop(proc)
                if bare:
                    row["bare_shell_paint_s"] = bare
                    row["first_paint_x_bare"] = row["first_paint_s"] / bare
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    cols = ("n", "build_s", "publish_ms_first", "publish_ms_last", "publish_ms_at_n", "load_s", "app_start_s",
            "html_bytes", "bare_shell_paint_s", "shell_paint_s", "first_paint_s", "rank_switch_s", "model_switch_s",
            "rank_by_entries", "compact_table_px")
    print("\n" + " ".join(f"{c:>16}" for c in cols))
    for r in rows:
        print(" ".join(f"{r[c]:>16.3f}" if isinstance(r.get(c), float) else f"{r.get(c, '—')!s:>16}" for c in cols))
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    a.out.write_text(json.dumps({"load_average_at_start": load, "cpus": os.cpu_count(), "rows": rows,
                                 "template": str(a.template)}, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
