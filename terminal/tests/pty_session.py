"""Runs a command on a new pseudo-terminal, the way a person at a kiosk would use it, and
answers its prompts as they appear.

The command gets the pty as its controlling terminal (stdin, stdout and stderr too), so a
program that reads a secret from /dev/tty without echo (rpassword) works exactly as on a real
console. Each step waits for a regular expression in the output after the previous step's
match, then types its answer; `\\1` in an answer is the match's first group (e.g. the number
of a menu line). A secret step also waits until the program has switched echo off: typing
before that would be echoed by the line discipline, which is what the caller tests for.

Usage:
  python3 pty_session.py STEPS_JSON COMMAND [ARG...]

STEPS_JSON is a list of {"expect": REGEX, "answer": TEXT, "secret": BOOL}. Writes everything
the command printed (the terminal's transcript, with its echo) to stdout and exits with the
command's exit status. When a step's text never comes, it stops the command, writes the
transcript and a message to stderr, and exits 97: the caller tells the two apart by stderr.
"""
import json
import os
import pty
import re
import select
import signal
import sys
import termios
import time

# Each step may take this long: a debug build renders and signs on a shared 2-core machine.
STEP_SECONDS = 120.0
# How often a secret step re-reads the terminal's flags while it drains the output.
POLL_SECONDS = 0.01


class Failed(Exception):
    pass


def main() -> int:
    steps = json.loads(sys.argv[1])
    command = sys.argv[2:]
    pid, master = pty.fork()
    if pid == 0:
        # pty.fork made this process a session leader with the pty as controlling terminal.
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    transcript = bytearray()
    seen = 0
    open_ = True

    def read(timeout: float) -> None:
        nonlocal open_
        if not open_:
            return
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b""  # EIO: the command closed its end of the pty.
        if chunk:
            transcript.extend(chunk)
        else:
            open_ = False

    try:
        for step in steps:
            pattern = re.compile(step["expect"])
            deadline = time.monotonic() + STEP_SECONDS
            while True:
                text = transcript.decode("utf-8", errors="replace")
                found = pattern.search(text, seen)
                if found:
                    break
                if not open_:
                    raise Failed(f"the command ended before /{step['expect']}/")
                if time.monotonic() > deadline:
                    raise Failed(f"no /{step['expect']}/ within {STEP_SECONDS} s")
                read(deadline - time.monotonic())
            seen = found.end()
            if step.get("secret"):
                # tcgetattr on the master reports the terminal's (the slave's) flags on Linux.
                while termios.tcgetattr(master)[3] & termios.ECHO:
                    if not open_:
                        raise Failed("the command ended before switching echo off")
                    if time.monotonic() > deadline:
                        raise Failed(f"echo still on {STEP_SECONDS} s after /{step['expect']}/")
                    read(POLL_SECONDS)
            os.write(master, found.expand(step["answer"]).encode("utf-8"))
        deadline = time.monotonic() + STEP_SECONDS
        while open_:
            if time.monotonic() > deadline:
                raise Failed(f"the command did not end within {STEP_SECONDS} s of the last step")
            read(deadline - time.monotonic())
        _, status = os.waitpid(pid, 0)
    except Failed as failure:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.stdout.buffer.write(transcript)
        sys.stderr.write(f"pty_session: {failure}\n")
        return 97
    sys.stdout.buffer.write(transcript)
    code = os.waitstatus_to_exitcode(status)
    # A command killed by a signal reports 128 + the signal, as a shell would.
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
