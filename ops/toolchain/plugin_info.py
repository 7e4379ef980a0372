"""Ask a resource plugin binary which version it is, the way the engine does (gRPC GetPluginInfo).

A file name or an install command can claim any version; the binary's own answer cannot be
mislabelled, so bootstrap installs and accepts only a plugin that reports the pinned version.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2_grpc

from ops.errors import ExitCode, UserError

ANSWER_TIMEOUT_S = 30.0


def reported_version(binary: Path) -> str:
    """Start the plugin, read the port it serves on, ask its version, stop it."""
    try:
        plugin = subprocess.Popen(
            [str(binary)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
    except OSError as error:
        message = f"{binary} cannot be run ({error}): it is not a plugin binary for this machine."
        raise UserError(message, ExitCode.TOOLCHAIN) from None
    try:
        assert plugin.stdout is not None
        port = plugin.stdout.readline().strip()
        if not port.isdigit():
            message = f"{binary} did not start as a Pulumi plugin (it printed {port!r}, not a port)."
            raise UserError(message, ExitCode.TOOLCHAIN)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=ANSWER_TIMEOUT_S)
        return str(info.version).lstrip("v")
    except grpc.RpcError as error:
        raise UserError(f"{binary} did not answer GetPluginInfo ({error.code()}).", ExitCode.TOOLCHAIN) from None
    finally:
        plugin.kill()
        plugin.wait()
