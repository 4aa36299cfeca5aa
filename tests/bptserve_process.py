"""Starts the bptserve binary on loopback with ephemeral ports, for the Python tests."""
import os
import re
import subprocess


def start(bin_dir, *extra_args):
    """Returns (process, grpc_port, metrics_port) once the server says where it listens."""
    server = subprocess.Popen(
        [os.path.join(bin_dir, "bptserve"), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
         *extra_args],
        stdout=subprocess.PIPE, text=True)
    while True:
        line = server.stdout.readline()
        if not line:
            server.wait()
            raise RuntimeError("bptserve exited before listening")
        ports = re.match(r"listening on port (\d+), metrics on port (\d+)", line)
        if ports:
            return server, int(ports.group(1)), int(ports.group(2))
