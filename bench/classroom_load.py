"""Classroom load: N browser sessions at once against a local app while one training job runs.

Each session (its own browser context, its own user) opens the Sample page, generates 50 tokens, then opens
the Attention page. Reports p50/p95 latency of each step and the errors seen. Local only (127.0.0.1),
bounded in sessions and time. Target on a 2-core machine: zero errors, p95 under 3 s.

    .venv/bin/python bench/classroom_load.py [--sessions 20] [--timeout 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMIUM_ARGS, ERRORS, IDLE, chromium_path, running_app  # noqa: E402


async def wait_idle(page, timeout_ms: float) -> None:
    await page.wait_for_timeout(200)
    await page.wait_for_selector(IDLE, timeout=timeout_ms)


async def session(browser, url: str, n: int, timings: dict, errors: list, timeout_ms: float) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    user = f"student{n:02d}"

    async def loopback_only(route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
            await route.continue_()
        else:
            errors.append(f"{user}: external request blocked: {route.request.url[:100]}")
            await route.abort()

    await context.route("**/*", loopback_only)
    context.set_default_timeout(timeout_ms)  # Playwright's own 30 s default would cut slow page loads short
    page = await context.new_page()
    try:
        async def step(name: str, action, done: str | None = None) -> None:
            t0 = time.perf_counter()
            await action()
            if done:  # the rerun may not have started yet when we first look: wait for its result
                await page.get_by_role("button", name=done).wait_for(timeout=timeout_ms)
            await wait_idle(page, timeout_ms)
            timings.setdefault(name, []).append(time.perf_counter() - t0)
            for box in await page.query_selector_all(ERRORS):
                errors.append(f"{user} {name}: {(await box.inner_text())[:120]}")

        await step("open sample page", lambda: page.goto(f"{url}/sample?user={user}"))
        max_new = page.get_by_label("Max new tokens", exact=True)
        await max_new.fill("50")
        await max_new.press("Enter")
        await wait_idle(page, timeout_ms)
        await step("generate 50 tokens", lambda: page.get_by_role("button", name="▶ Generate").click(),
                   done="⬇️ Tokens (CSV)")
        await step("open attention page", lambda: page.goto(f"{url}/attention?user={user}"))
    except Exception as exc:  # a timeout or a missing element is an error of this session, not of the bench
        errors.append(f"{user}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        await context.close()


async def main_async(args) -> int:
    from playwright.async_api import async_playwright

    tmp = Path(tempfile.mkdtemp(prefix="tinylab-load-"))
    workspace = tmp / "ws"
    train = subprocess.Popen(
        [sys.executable, "-m", "lab", "train", "load-bench", "--preset", "micro", "--data", "stories",
         "--steps", "100000", "--runs-dir", str(tmp / "runs")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    timings: dict[str, list[float]] = {}
    errors: list[str] = []
    metrics = tmp / "runs" / "load-bench" / "metrics.jsonl"
    try:
        with running_app(workspace) as url:
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                # Warm-up, not counted: the server's first visit imports torch and loads the demo model once.
                await session(browser, url, 99, {}, errors, args.timeout * 1000)
                deadline = time.time() + 120  # measure while the job trains (past its data and tokenizer set-up)
                while (not metrics.exists() or len(metrics.read_text().splitlines()) < 2) and time.time() < deadline:
                    await asyncio.sleep(0.5)
                t0 = time.perf_counter()
                tasks = [asyncio.create_task(session(browser, url, n, timings, errors, args.timeout * 1000))
                         for n in range(args.sessions)]
                _, unfinished = await asyncio.wait(tasks, timeout=args.timeout)
                for task in unfinished:  # past the time bound: counted as errors, not waited for
                    task.cancel()
                if unfinished:
                    errors.append(f"{len(unfinished)} sessions unfinished after {args.timeout:.0f} s")
                    await asyncio.wait(unfinished, timeout=30)
                wall = time.perf_counter() - t0
                await browser.close()
    finally:
        train.terminate()
        train.wait(10)
    training_alive = train.returncode in (None, -15)
    print(f"{args.sessions} sessions, wall {wall:.1f} s, training job running throughout: {training_alive}")
    all_times = [t for ts in timings.values() for t in ts]
    for name, ts in [*timings.items(), ("all steps", all_times)]:
        if not ts:
            continue
        ts = sorted(ts)
        p95 = ts[min(len(ts) - 1, int(0.95 * len(ts)))]
        print(f"  {name:22s} n={len(ts):3d}  p50={statistics.median(ts):6.2f} s  p95={p95:6.2f} s  max={ts[-1]:6.2f} s")
    print(f"errors: {len(errors)}")
    for e in errors[:20]:
        print("  ", e)
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="Concurrent browser sessions (at most 40).")
    parser.add_argument("--timeout", type=float, default=300, help="Seconds before the whole bench gives up.")
    args = parser.parse_args()
    args.sessions = max(1, min(args.sessions, 40))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
