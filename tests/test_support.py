"""Shared by the Python tests: the bptserve binary on loopback ports, and counted checks."""
import os
import re
import subprocess


class Checks:
    """Records every check; the summary line is read by CI ("N passed, N failed")."""

    def __init__(self):
        self.total = 0
        self.failures = []

    def __call__(self, condition, message):
        self.total += 1
        if not condition:
            self.failures.append(message)
            print("FAIL:", message)

    def finish(self):
        print(f"{self.total - len(self.failures)} passed, {len(self.failures)} failed")
        return 1 if self.failures else 0


def start_server(bin_dir, *extra_args):
    """Returns (process, grpc_port, metrics_port) once the server says it loaded the model and
    serves: readiness (bptserve.v1.Inference) is SERVING from then on, and not before; the port
    opens earlier, while the model loads."""
    server = subprocess.Popen(
        [os.path.join(bin_dir, "bptserve"), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
         *extra_args],
        stdout=subprocess.PIPE, text=True)
    ports = None
    while True:
        line = server.stdout.readline()
        if not line:
            server.wait()
            raise RuntimeError("bptserve exited before " + ("loading the model" if ports else "listening"))
        ports = ports or re.match(r"listening on port (\d+), metrics on port (\d+)", line)
        if ports and line.startswith("model loaded"):
            return server, int(ports.group(1)), int(ports.group(2))
