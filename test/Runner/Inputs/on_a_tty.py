#!/usr/bin/env python3
"""on_a_tty.py CMD...: runs CMD with stderr on a pseudo-terminal (stdout and
stdin as given) and prints what it wrote there, carriage returns as
newlines; exits with CMD's status."""
import os
import pty
import subprocess
import sys

master, slave = pty.openpty()
proc = subprocess.Popen(sys.argv[1:], stderr=slave)
os.close(slave)
chunks = []
while True:
    try:
        data = os.read(master, 4096)
    except OSError:  # EIO: the other side closed
        break
    if not data:
        break
    chunks.append(data)
status = proc.wait()
sys.stdout.flush()
print(b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
      .replace("\r", "\n"))
sys.exit(status)
