"""Every command block of the README and of docs/ runs, as a newcomer pastes it, against `make run`'s
launcher (gunicorn and the background process that sends webhooks), and prints what the page shows
(tests/helpers/doc_blocks.py says how a page marks its blocks and what is masked)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from tests.helpers.api import WEBHOOK_SECRET_KEY
from tests.helpers.doc_blocks import Session, blocks, mask, run
from tests.helpers.live_server import Launcher, free_port
from tests.helpers.waiting import wait_until

ADMIN_TOKEN = "e2e-docs-blocks-admin-token-0123456789"
START_DEADLINE_S = 60  # the launcher migrates and starts gunicorn and the dispatcher, on a shared machine
PAGES = ["README.md", *sorted(str(path.relative_to(PROJECT_ROOT)) for path in (PROJECT_ROOT / "docs").glob("*.md"))]
# What `make run` would be started with for the walk-through (its webhook receiver is on loopback).
SETTINGS = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_SECRET_KEY": WEBHOOK_SECRET_KEY}
# A checkout's own files, which the pages' commands use (make, .venv); instance/ is the session's own.
LEFT_OUT = {"instance", ".git", ".env"}


def page_blocks(page: str):
    return blocks((PROJECT_ROOT / page).read_text())


def checkout_in(folder: Path) -> Path:
    """`folder` as a checkout: links to the project's files, and an instance/ holding the admin token
    that `make run` would have generated there."""
    for entry in PROJECT_ROOT.iterdir():
        if entry.name not in LEFT_OUT:
            (folder / entry.name).symlink_to(entry)
    (folder / "instance").mkdir()
    (folder / "instance" / "admin_token").write_text(ADMIN_TOKEN + "\n")
    return folder


@pytest.fixture
def session(scratch, scratch_url):
    """A launcher serving a database of its own, and a folder and environment to paste the page in."""
    launcher = Launcher(scratch / "server", scratch_url, ADMIN_TOKEN, SETTINGS)
    launcher.instance_dir.mkdir()
    launcher.start()
    try:
        wait_until(
            lambda: launcher.said("Serving on") or launcher.process.poll() is not None, "it serves", START_DEADLINE_S
        )
        assert launcher.said("Serving on"), launcher.messages()
        (scratch / "reader").mkdir()
        reader = checkout_in(scratch / "reader")
        # make check and make purge-keys find the server's database as they would find make run's.
        env = {**os.environ, **SETTINGS, "DATABASE_URL": scratch_url}
        env.pop("ADMIN_TOKEN", None)
        yield Session(reader, env, launcher.port, free_port())
    finally:
        launcher.kill()


@pytest.mark.parametrize("page", [page for page in PAGES if any(block.runs for block in page_blocks(page))])
def test_each_command_block_of_the_page_runs_and_prints_what_the_page_shows(page, session):
    for block, printed in run(page_blocks(page), session):
        where = f"{page}, the block at line {block.start + 1}"
        assert mask(printed) == mask(block.expected), f"{where} printed:\n{printed}"


@pytest.mark.parametrize("page", PAGES)
def test_a_block_not_run_says_why_and_only_shell_blocks_are_skipped(page):
    for block in page_blocks(page):
        if block.not_run is not None:
            assert block.language == "sh" and len(block.not_run) > 20, f"{page}, line {block.start + 1}"


@pytest.mark.parametrize("page", PAGES)
def test_no_other_block_calls_the_service(page):
    """A sample in a ```bash or ```console block would escape the test: commands go in ```sh blocks."""
    for block in page_blocks(page):
        if block.language not in ("sh", "text") and not block.file_name:
            assert "curl " not in block.body and "localhost:8000" not in block.body, f"{page}, line {block.start + 1}"
