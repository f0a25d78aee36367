"""Assets: the cache folder, unpacking a wheel once, the sha256 pin, and the errors when nothing can be had."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from toolrl_env.assets import BFCL_EVAL, HOME_VARIABLE, Asset, AssetError, asset_dir, cache_home


def make_wheel(folder: Path, name: str = "demo_pkg-1.0-py3-none-any.whl") -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo_pkg/data.json", '{"answer": 42}')
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "home"))
    return tmp_path / "home"


def test_cache_home_follows_the_variable(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_home() == home
    monkeypatch.delenv(HOME_VARIABLE)
    assert cache_home() == Path.home() / ".cache" / "toolrl"


def test_a_wheel_in_downloads_is_unpacked_once_and_then_used_offline(home: Path) -> None:
    wheel, digest = make_wheel(home / "downloads")
    asset = Asset(name="demo-pkg", version="1.0", filename=wheel.name, sha256=digest)
    folder = asset_dir(asset)
    assert folder == home / "demo-pkg-1.0"
    assert (folder / "demo_pkg" / "data.json").read_text() == '{"answer": 42}'
    wheel.unlink()  # the unpacked copy is all later calls need
    assert asset_dir(asset) == folder
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []  # no staging folders left


def test_a_wheel_that_is_not_the_pinned_one_is_refused(home: Path) -> None:
    wheel, _ = make_wheel(home / "downloads")
    asset = Asset(name="demo-pkg", version="1.0", filename=wheel.name, sha256="0" * 64)
    with pytest.raises(AssetError, match="pinned to 0000"):
        asset_dir(asset)
    assert not (home / "demo-pkg-1.0").exists()


def test_an_asset_the_registry_does_not_have_says_how_to_provide_it(home: Path) -> None:
    asset = Asset(name="toolrl-no-such-package", version="0.0.1", filename="x.whl", sha256="0" * 64)
    with pytest.raises(AssetError, match="could not be downloaded") as error:
        asset_dir(asset)
    assert str(home / "downloads") in str(error.value) and HOME_VARIABLE in str(error.value)


def test_bfcl_eval_is_pinned_and_unpacked_with_its_data() -> None:
    folder = asset_dir(BFCL_EVAL)
    assert (folder / "bfcl_eval" / "data" / "BFCL_v4_simple_python.json").is_file()
    assert (folder / ".complete").read_text().strip() == BFCL_EVAL.sha256
