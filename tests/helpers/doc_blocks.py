"""The command blocks of the README and docs/ pages, run as a newcomer pastes them, and compared.

In a page:
- a ```sh block is commands to paste, as they are (no prompts), and it is run;
- the ```text block right after it, preceded by `<!-- output -->`, is what it prints (none: nothing);
- a ```<language> <file name> block (```python receiver.py) is a file the reader saves; it is written;
- a block preceded by `<!-- not run: <reason> -->` is skipped, and only those.

A page's blocks run in order in one bash session, so that the variables one sets serve the next, in a
folder of their own. What they print is compared with the page once the fields that differ from run to
run (ids, times, request ids, secrets, tokens) are masked on both sides. The pages talk to
localhost:8000 and a webhook receiver on 127.0.0.1:8001; the test points those at ports of its own.

`python -m tests.helpers.doc_blocks PAGE --port 8000` runs PAGE against a running `make run`, from the
current folder, and writes what it really printed into the page.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\S*)(?:[ \t]+(\S+))?[ \t]*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
OUTPUT = "<!-- output -->"
COMMANDS = "sh"
SERVICE_ADDRESS, RECEIVER_ADDRESS = "localhost:8000", "127.0.0.1:8001"
MARKER = "@@doc-block@@"
VOLATILE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<request-id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "<secret>"),
    (re.compile(r"msg_[A-Za-z0-9]+"), "<message-id>"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "<token>"),
]


@dataclass
class Block:
    start: int  # index of its opening fence in the page's lines
    end: int  # index of its closing fence
    language: str
    file_name: str | None
    body: str
    not_run: str | None = None
    output: Block | None = None  # the ```text block of what it prints

    @property
    def runs(self) -> bool:
        return self.not_run is None and self.language == COMMANDS

    @property
    def saved(self) -> bool:
        return self.not_run is None and self.file_name is not None

    @property
    def expected(self) -> str:
        return self.output.body if self.output else ""


def blocks(page: str) -> list[Block]:
    """The page's fenced blocks, each command block with its output block attached (and not listed)."""
    lines, found, index = page.splitlines(), [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening or not opening.group(1):
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        block = Block(
            index, end, opening.group(1), opening.group(2), "".join(f"{line}\n" for line in lines[index + 1 : end])
        )
        comment = _comment_before(lines, index)
        if comment == OUTPUT and found and found[-1].runs:
            found[-1].output = block
        else:
            marked = NOT_RUN.match(comment)
            block.not_run = marked.group(1) if marked else None
            found.append(block)
        index = end + 1
    return found


def _comment_before(lines: list[str], fence: int) -> str:
    return next((lines[i].strip() for i in range(fence - 1, -1, -1) if lines[i].strip()), "")


def mask(text: str) -> str:
    """`text` without its volatile fields, carriage returns, trailing blanks and blank lines at its ends."""
    text = "\n".join(line.rstrip() for line in text.replace("\r", "").strip("\n").splitlines())
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


@dataclass(frozen=True)
class Session:
    """Where a page runs: its folder, its environment, and the ports standing for 8000 and 8001."""

    cwd: Path
    env: dict
    service_port: int
    receiver_port: int

    def to_local(self, text: str) -> str:
        return text.replace(SERVICE_ADDRESS, f"localhost:{self.service_port}").replace(
            RECEIVER_ADDRESS, f"127.0.0.1:{self.receiver_port}"
        )

    def to_page(self, text: str) -> str:
        return text.replace(f"localhost:{self.service_port}", SERVICE_ADDRESS).replace(
            f"127.0.0.1:{self.receiver_port}", RECEIVER_ADDRESS
        )


def run(page_blocks: list[Block], session: Session, timeout_s: float = 120) -> list[tuple[Block, str]]:
    """Save the page's files, run its command blocks in order in one bash; each block with what it printed."""
    script, commands = [], []
    for block in page_blocks:
        if block.saved:
            (session.cwd / block.file_name).write_text(session.to_local(block.body))
        if block.runs:
            script += [f"printf '\\n{MARKER}\\n'", session.to_local(block.body)]
            commands.append(block)
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc"],
        cwd=session.cwd,
        env=session.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so that its background jobs (the receiver) end with it, below
    )
    try:
        output, _ = process.communicate("\n".join(script) + "\n", timeout=timeout_s)
    finally:
        _end_session(process)
    printed = [session.to_page(text) for text in output.split(f"\n{MARKER}\n")[1:]]
    return list(zip(commands, printed, strict=True))


def _end_session(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def with_outputs(page: str, results: list[tuple[Block, str]]) -> str:
    """`page` with each command block's output block holding what it printed (the `--port` mode)."""
    lines = page.splitlines()
    for block, printed in sorted(results, key=lambda result: result[0].start, reverse=True):
        shown = printed.replace("\r", "").strip("\n").splitlines()
        replacement = ["", OUTPUT, "```text", *shown, "```"] if shown else []
        if block.output:
            lines[block.end + 1 : block.output.end + 1] = replacement
        else:
            lines[block.end + 1 : block.end + 1] = replacement
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a page's blocks against a running server; write the output")
    parser.add_argument("page", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--receiver-port", type=int, default=8001)
    args = parser.parse_args()
    session = Session(Path.cwd(), dict(os.environ), args.port, args.receiver_port)
    page = args.page.read_text()
    args.page.write_text(with_outputs(page, run(blocks(page), session)))


if __name__ == "__main__":
    main()
