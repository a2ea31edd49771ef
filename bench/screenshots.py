"""Screenshots of the dashboard for docs/ui.md (docs/images/ui-*.png): a demo sweep of
lr x seed on SQLite, a run still training, drawn in Debian's headless Chromium.

    python bench/screenshots.py docs/images
"""

from __future__ import annotations

import math
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

import sqltrack as st
from sqltrack.ui import create_app

HOSTILE = "<img src=x onerror=alert(1)>"


def sweep(client: st.Client) -> tuple[list[st.Run], st.Run]:
    """Nine finished runs (lr x seed) of 3,000 steps, and a run with artifacts and a
    sample, not started yet."""
    exp = st.Experiment(client, name="resnet-sweep")
    noise = random.Random(0)
    runs = []
    for lr in (0.1, 0.03, 0.01):
        for seed in range(3):
            run = exp.get_run().set_args({"lr": lr, "seed": seed, "model": "resnet18"})
            with run.add_tags("sweep").track(buffered=True):
                for step in range(3000):
                    loss = 2.3 * math.exp(-step * lr / 40) * (1 + 0.2 * (seed - 1)) + 0.2
                    run.add_metrics({"train_loss": loss + noise.gauss(0, 0.05),
                                     "val_acc": 1 - loss / 2.6 + noise.gauss(0, 0.01)},
                                    step=step)  # fmt: skip
            runs.append(run)
    runs[0].add_tags(HOSTILE)
    live = exp.get_run().set_args({"lr": 0.3, "seed": 0, "model": "resnet18"})
    live.set_hardware().set_packages()
    for step in (1000, 2000):
        live.log_artifact(f"s3://lab/ckpt/step-{step}.pt", name="checkpoint",
                          kind="checkpoint", step=step, sha256=f"{step:064x}",
                          size=44_700_000)  # fmt: skip
    live.log_sample(2000, {"prompt": "a photo of a cat"}, "cat, 0.93", kind="classification")
    return runs, live


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    chromium = shutil.which("chromium")
    assert chromium, "needs Debian's chromium (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    client = st.Client(engine="sqlite", dbpath=tempfile.mkdtemp() + "/demo.db")
    st.setup(client)
    runs, live = sweep(client)
    stop = threading.Event()

    def train() -> None:
        with live.track(buffered=True):
            step = 0
            while not stop.is_set():
                loss = 2.3 * math.exp(-step * 0.3 / 40) + 0.25
                live.add_metrics({"train_loss": loss, "val_acc": 1 - loss / 2.6}, step=step)
                step += 1
                time.sleep(0.002)

    threading.Thread(target=train, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(client, hosts=["127.0.0.1"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/"
    ticked = ",".join(str(r.id) for r in [*runs[:3], *runs[6:], live])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}#experiment=resnet-sweep&runs={ticked}&metrics=train_loss,val_acc")
        page.wait_for_selector('.chart[data-metric="val_acc"]')
        time.sleep(3)  # (the running run's curve grows meanwhile)
        page.screenshot(path=str(out / "ui-runs.png"), full_page=True)
        page.select_option("#group", "lr")
        page.fill("#smoothing", "0.9")
        page.dispatch_event("#smoothing", "input")
        time.sleep(1)
        page.locator("#charts").screenshot(path=str(out / "ui-groups.png"))
        page.goto(f"{base}#run/{live.id}")
        page.wait_for_selector("#run-view h2")
        time.sleep(1)
        page.screenshot(path=str(out / "ui-run.png"), full_page=True)
        browser.close()
    stop.set()
    server.should_exit = True
    assert errors == [], errors
    print(f"wrote {out}/ui-runs.png, ui-groups.png, ui-run.png")


if __name__ == "__main__":
    main()
