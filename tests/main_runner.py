"""Runs main.py as users do, several command lines at once (each process loads TensorFlow on its own)."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_concurrently(command_lines, demo_dir, timeout):
    """[(process, stdout, stderr)] of `python main.py *args` for each args in command_lines, run concurrently
    from the repository root with the demo data cached in demo_dir."""
    env = {**os.environ, "EFFICIENTNET_DEMO_DIR": str(demo_dir)}
    processes = [subprocess.Popen([sys.executable, "main.py", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in command_lines]
    return [(p, *p.communicate(timeout=timeout)) for p in processes]
