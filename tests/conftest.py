"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory):
    """Train the embedded digits model once per session into a temporary cache folder (LRP_TUNER_CACHE,
    inherited by subprocesses); yield (model, report, cache folder)."""
    from studies.presets import _digits_cache

    cache = tmp_path_factory.mktemp("lrp-tuner-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("LRP_TUNER_CACHE", str(cache))
    model, report = _digits_cache.cached_digits_model()
    print(f"digits training: {report['train_seconds']:.1f} s, held-out accuracy {report['accuracy']:.4f}")
    yield model, report, cache
    patch.undo()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A PostgreSQL database: $LRP_TUNER_POSTGRES_URL (.ci/run starts the distribution's server and sets it),
    else a private server started here from the installed PostgreSQL binaries."""
    import glob
    import os
    import shutil
    import socket
    import subprocess
    import tempfile
    from pathlib import Path

    if os.environ.get("LRP_TUNER_POSTGRES_URL"):
        yield os.environ["LRP_TUNER_POSTGRES_URL"]
        return
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.fail(
            "PostgreSQL is not installed: run .ci/run, or install postgresql, "
            "or set LRP_TUNER_POSTGRES_URL to a database the tests may use"
        )
    bin_dir = os.path.dirname(binaries[-1])
    data = Path(tempfile.mkdtemp(prefix="lrp-tuner-postgres-"))  # pytest's own folders are private to root
    shutil.chown(data, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def as_postgres(*command):
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)

    as_postgres(f"{bin_dir}/initdb", "-D", str(data / "db"), "--auth=trust", "-U", "postgres")
    as_postgres(
        f"{bin_dir}/pg_ctl",
        "-D",
        str(data / "db"),
        "-l",
        str(data / "log"),
        "-w",
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data / "db"), "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def resnet():
    """A torchvision ResNet-18 (random weights, 10 classes) whose BatchNorm layers are far from identity."""
    import torch
    import torchvision
    from helpers import randomise_batch_norm

    torch.manual_seed(0)
    return randomise_batch_norm(torchvision.models.resnet18(num_classes=10)).eval()
