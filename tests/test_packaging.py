"""The wheel carries what an installed hubctl needs outside the checkout: the bundled registry
(families.toml, every manifest, the per-family shape tables) and the JSON Schemas, at the place
hubctl.config looks for them (hubctl/_data/...). Builds the real wheel with hatchling (the project's
build backend, called directly so no build environment is downloaded) and reads its file list; then
imports hubctl from the unpacked wheel, away from the checkout, and asks it where its data is."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed: pip install hatchling")
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    wheels = list(out.glob("hubctl-*.whl"))
    assert len(wheels) == 1, (wheels, r.stdout)
    return wheels[0]


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_the_wheel_carries_the_bundled_registry_shapes_and_schemas(wheel: Path) -> None:
    names = _names(wheel)
    data = "hubctl/_data/"
    assert data + "registry/families.toml" in names
    manifests = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "registry" / "manifests").glob("*/*.toml"))
    shapes = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "registry" / "shapes").glob("*.json"))
    schemas = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "schemas").glob("*.json"))
    assert manifests and shapes and schemas  # the checkout has them, so the comparison below means something
    assert "registry/manifests/checkpoint/stable-diffusion.toml" in manifests
    assert "registry/shapes/sd1.json" in shapes and "schemas/manifest.schema.json" in schemas
    missing = [p for p in manifests + shapes + schemas if data + p not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert "hubctl/cli/app.py" in names and "hubctl/registry/compile.py" in names
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as z:
        assert "hubctl = hubctl.cli.app:main" in z.read(entry).decode()


def test_hubctl_unpacked_from_the_wheel_finds_its_registry_and_schemas(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    code = (
        "import json, hubctl; from hubctl.config import bundled_registry_path, bundled_schemas_path;"
        " from hubctl.compat.shapes import shape_table;"
        " r = bundled_registry_path(); s = bundled_schemas_path();"
        " print(json.dumps({'module': hubctl.__file__, 'registry': str(r), 'families': (r / 'families.toml').is_file(),"
        " 'manifests': len(list((r / 'manifests').glob('*/*.toml'))), 'schemas': sorted(p.name for p in s.glob('*.json')),"
        " 'sd1_shapes': sorted(shape_table('sd1') or [])}))"
    )
    away = tmp_path / "elsewhere"
    away.mkdir()
    r = subprocess.run([sys.executable, "-c", code], cwd=away, capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HUBCTL_HOME": str(tmp_path / "home")})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["module"].startswith(str(site)), got  # the unpacked wheel, not the checkout
    assert got["registry"] == str(site / "hubctl" / "_data" / "registry")
    assert got["families"] is True
    assert got["manifests"] == len(list((ROOT / "registry" / "manifests").glob("*/*.toml")))
    assert got["schemas"] == sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    assert got["sd1_shapes"], got
