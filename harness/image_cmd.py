"""`harness image build`: the node's Docker image for `--platform docker`, from the Dockerfile.

The build context is made here, not taken from the working tree: the Dockerfile, the `node/`
package and, for a base that lacks them (Debian's has no httptools), the wheels the node needs,
fetched with the host's pip for the engine's architecture. So a build never sends reports or
data to the engine, and with a local base image (scripts/make-base-image.sh) it needs no registry
but PyPI.

The image also carries the outside stores (`harness/stores/`): etcd, redis-server and
redis-sentinel from Debian. For the debootstrap base (Debian 12, like the hosts this runs on) the
host's apt resolves which packages the base lacks (against the base's own dpkg status) and
downloads them into the context (`apt-get download`), and the Dockerfile installs them with
`dpkg -i`: the build itself reaches no mirror. Otherwise the Dockerfile installs them with
apt-get from the base's own sources.
"""

from __future__ import annotations

import io
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click

from harness.platforms.base import PlatformError

DEFAULT_TAG = "dynamo-node:latest"
REGISTRY_BASE = "python:3.11-slim"
LOCAL_BASE = "dynamo-base:bookworm"
WHEEL_REQUIREMENTS = ("httptools>=0.6", "yarl>=1.9", "msgpack>=1.0")
#: Debian packages of the outside stores the image carries (its label says which stores)
STORE_PACKAGES = ("etcd-server", "redis-server", "redis-sentinel")
STORES_LABEL = "dynamo-harness.stores"  # set by the Dockerfile: the stores the image can run
IMAGE_PYTHON = "3.11"  # both bases: Debian bookworm's python3 and python:3.11-slim


def repo_root() -> Path:
    """Where the Dockerfile and node/ are (the harness is installed editable from the repo)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "Dockerfile").is_file() or not (root / "node").is_dir():
        raise PlatformError(f"no Dockerfile and node/ beside the harness (looked in {root}); "
                            "build from a checkout of the repository (pip install -e .)")
    return root


def resolve_base(client: object, base: str) -> str:
    """`auto`: the registry base if the engine has it, else the debootstrap one, else the registry
    base (which the engine will try to pull)."""
    if base != "auto":
        return base
    from docker.errors import ImageNotFound

    for candidate in (REGISTRY_BASE, LOCAL_BASE):
        try:
            client.images.get(candidate)  # type: ignore[attr-defined]
            return candidate
        except ImageNotFound:
            continue
    return REGISTRY_BASE


def fetch_wheels(dest: Path, arch: str) -> list[Path]:
    """Wheels of the node's dependencies for CPython 3.11 on `arch` Linux, with the host's pip."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", IMAGE_PYTHON,
           "--abi", f"cp{IMAGE_PYTHON.replace('.', '')}", "--abi", "abi3", "--abi", "none",
           "--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_17_{machine}",
           "--platform", f"manylinux_2_28_{machine}", "--platform", "any",
           "--dest", str(dest), *WHEEL_REQUIREMENTS]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise PlatformError("pip download of the node's wheels took over 300 s") from None
    if proc.returncode != 0:
        raise PlatformError("pip could not fetch the node's wheels for the image "
                            f"({' '.join(WHEEL_REQUIREMENTS)}): {proc.stderr.strip()[-600:]}")
    return sorted(dest.glob("*.whl"))


def _host_arch() -> str | None:
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def fetch_debs(client: object, base: str, dest: Path) -> list[Path]:
    """The .deb files the base lacks for STORE_PACKAGES, resolved by the host's apt against the
    base's dpkg status and downloaded with `apt-get download` (no root needed)."""
    status = dest / "dpkg-status"
    try:
        raw = client.containers.run(base, ["cat", "/var/lib/dpkg/status"],  # type: ignore
                                    remove=True, network_disabled=True)
    except Exception as e:  # the docker SDK raises several kinds here
        raise PlatformError(f"reading the dpkg status of {base} failed: {e}") from None
    status.write_bytes(raw)
    sim = subprocess.run(["apt-get", "install", "-s", "-qq", "--no-install-recommends",
                          "-o", f"Dir::State::status={status}", *STORE_PACKAGES],
                         capture_output=True, text=True, timeout=120)
    if sim.returncode != 0:
        raise PlatformError(f"the host's apt cannot resolve {' '.join(STORE_PACKAGES)} for "
                            f"{base}: {(sim.stderr or sim.stdout).strip()[-600:]}")
    wanted = []
    for line in sim.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "Inst":
            wanted.append(f"{parts[1]}={parts[2].lstrip('(')}")
    status.unlink()
    if not wanted:
        return []
    got = subprocess.run(["apt-get", "download", "-qq", *wanted], cwd=dest,
                         capture_output=True, text=True, timeout=300)
    if got.returncode != 0:
        raise PlatformError(f"apt-get download of {' '.join(wanted)} failed: "
                            f"{(got.stderr or got.stdout).strip()[-600:]}")
    return sorted(dest.glob("*.deb"))


def build_context(root: Path, wheels: Sequence[Path],
                  debs: Sequence[Path] = ()) -> io.BytesIO:
    """A tar of the Dockerfile, node/ (without caches), and the wheels and .deb files at the
    top level."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(root / "Dockerfile", arcname="Dockerfile")
        for path in sorted((root / "node").rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
                continue
            tar.add(path, arcname=str(path.relative_to(root)))
        for extra in [*wheels, *debs]:
            tar.add(extra, arcname=extra.name)
    buf.seek(0)
    return buf


def build_image(base: str = "auto", tag: str = DEFAULT_TAG, wheels: str = "auto",
                echo: bool = False, debs: str = "auto") -> tuple[str, str, float]:
    """Build the image; returns (tag, the base used, seconds). Layers are cached by the engine,
    so a build with nothing changed takes about a second."""
    from docker.errors import APIError, BuildError

    from harness.platforms.docker import docker_client

    t0 = time.monotonic()
    client = docker_client()
    base = resolve_base(client, base)
    root = repo_root()
    use_wheels = wheels == "yes" or (wheels == "auto" and not base.startswith("python:"))
    arch = client.info().get("Architecture") or platform.machine()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}
    use_debs = debs == "yes" or (
        debs == "auto" and not base.startswith("python:") and shutil.which("apt-get") is not None
        and machine.get(_host_arch() or "", _host_arch()) == machine.get(arch, arch))
    with tempfile.TemporaryDirectory(prefix="dynamo-wheels-") as tmp:
        found = fetch_wheels(Path(tmp), arch) if use_wheels else []
        deb_dir = Path(tmp) / "debs"
        deb_dir.mkdir()
        packages = fetch_debs(client, base, deb_dir) if use_debs else []
        context = build_context(root, found, packages)
        try:
            _, logs = client.images.build(fileobj=context, custom_context=True, tag=tag,
                                          buildargs={"BASE": base}, rm=True, forcerm=True)
        except BuildError as e:
            tail = "".join(chunk.get("stream", "") for chunk in e.build_log)[-1500:]
            hint = ""
            if "pull access denied" in tail or "not found" in tail or "dial tcp" in tail:
                hint = (f"\nno registry reachable? make a local base with "
                        f"scripts/make-base-image.sh and use --base {LOCAL_BASE}")
            raise PlatformError(f"docker build of {tag} from {base} failed: {e.msg}\n"
                                f"{tail}{hint}") from None
        except APIError as e:
            raise PlatformError(f"docker build of {tag} from {base} failed: "
                                f"{e.explanation or e}") from None
    if echo:
        for chunk in logs:
            text = chunk.get("stream", "")
            if text.strip():
                click.echo(text.rstrip())
    return tag, base, time.monotonic() - t0


@click.group()
def image() -> None:
    """The Docker image the docker platform runs its nodes from."""


@image.command("build")
@click.option("--base", default="auto", show_default=True,
              help=f"base image: {REGISTRY_BASE} (from a registry), {LOCAL_BASE} (made by "
                   "scripts/make-base-image.sh), or auto: the first of those the engine has")
@click.option("--tag", default=DEFAULT_TAG, show_default=True, help="the image's name")
@click.option("--wheels", type=click.Choice(["auto", "yes", "no"]), default="auto",
              show_default=True,
              help="put the node's wheels (httptools, yarl, msgpack; host pip) in the context; "
                   "auto: unless the base "
                   "is python:*")
@click.option("--debs", type=click.Choice(["auto", "yes", "no"]), default="auto",
              show_default=True,
              help="put the .deb files of etcd and redis the base lacks (host apt-get download) "
                   "in the context; auto: unless the base is python:* (then the build runs "
                   "apt-get)")
@click.option("--verbose", is_flag=True, help="print the build's steps")
def build(base: str, tag: str, wheels: str, debs: str, verbose: bool) -> int:
    """Build the node image from the repo's Dockerfile (ARG BASE).

    Example, on a machine without a registry:
    scripts/start-dockerd.sh && scripts/make-base-image.sh && harness image build
    """
    try:
        tag, used, seconds = build_image(base, tag, wheels, echo=verbose, debs=debs)
    except PlatformError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"built {tag} from {used} in {seconds:.1f} s")
    return 0
