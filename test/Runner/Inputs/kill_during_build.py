"""Starts moe-run with a model compiler that records its pid and sleeps,
kills moe-run with SIGNAL once the compiler runs, and prints whether the
compiler outlived it and which temporary files the cache holds.

    kill_during_build.py SIGNAL WORKDIR MOE-RUN ARGS...
"""
import os
import signal
import subprocess
import sys
import time

sig, work, *command = sys.argv[1:]
pid_file = os.path.join(work, "compiler.pid")
compiler = os.path.join(work, "slow-cxx")
with open(compiler, "w") as f:
    f.write(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
os.chmod(compiler, 0o755)
if os.path.exists(pid_file):
    os.remove(pid_file)

env = dict(os.environ, MOE_MODEL_CXX=compiler)
run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
deadline = time.time() + 60
while not (os.path.exists(pid_file) and open(pid_file).read().strip()):
    if time.time() > deadline or run.poll() is not None:
        sys.exit("kill_during_build.py: the model compiler never started")
    time.sleep(0.05)
compiler_pid = int(open(pid_file).read())
run.send_signal(getattr(signal, "SIG" + sig))
run.wait(timeout=30)


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


deadline = time.time() + 10
while alive(compiler_pid) and time.time() < deadline:
    time.sleep(0.05)
print("moe-run died of", -run.returncode if run.returncode < 0 else run.returncode)
print("compiler alive:", alive(compiler_pid))
cache = os.path.join(work, "cache")
print("temporary files:", sorted(n for n in os.listdir(cache) if n.endswith(".tmp")) or "none")
