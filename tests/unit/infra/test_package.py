"""infra/package.py on a tiny, offline set of wheels: reproducible zips, stripping, checks.

The real `make package` downloads pyarrow and boto3 (about 30 s with a warm cache); these
tests build a wheel of their own and install it with ``--no-index`` so they need no network.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from infra import package


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(dest: Path, name: str = "tinydep", version: str = "1.0") -> Path:
    """A valid pure-Python wheel with a test suite and a bytecode cache to be stripped."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}/core.py": b"def answer():\n    return 42\n",
        f"{name}/tests/__init__.py": b"",
        f"{name}/tests/test_core.py": b"def test_answer():\n    assert True\n",
        f"{name}/__pycache__/core.cpython-312.pyc": b"\x00" * 64,
        f"{name}/_speedups.pyx": b"# cython source\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: duff-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_name = f"{name}-{version}.dist-info/RECORD"
    record = "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{record_name},,"])
    files[record_name] = (record + "\n").encode()
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return wheel


@pytest.fixture
def fake_project(tmp_path: Path):
    """A repository root with one code package, and a wheelhouse with its one dependency."""
    root = tmp_path / "repo"
    code = root / "fakefn"
    (code / "__pycache__").mkdir(parents=True)
    (code / "static").mkdir()
    (code / "__init__.py").write_text("")
    (code / "handler.py").write_text(
        "import tinydep\n\ndef handler(event, context):\n    return {'value': tinydep.VALUE}\n"
    )
    (code / "static" / "index.html").write_text("<!doctype html><title>x</title>\n")
    (code / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\x00" * 32)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("tinydep==1.0\n")
    artifact = package.Artifact("fake", "none", ("fakefn",), "fakefn.handler.handler")
    return root, wheels, requirements, artifact


def _build(fake_project, out: Path, **kwargs) -> package.BuildReport:
    root, wheels, requirements, artifact = fake_project
    return package.build_artifact(
        artifact,
        requirements,
        out,
        root=root,
        work_dir=out.parent / "work",
        find_links=wheels,
        no_index=True,
        **kwargs,
    )


def test_zip_holds_code_and_dependency_without_tests_caches_or_sources(fake_project, tmp_path):
    # Given a code package and one dependency that ships tests, bytecode and Cython sources
    # When the artifact is built
    report = _build(fake_project, tmp_path / "out")
    # Then the zip holds the code, its static files and the dependency, nothing else
    with zipfile.ZipFile(report.zip_path) as zf:
        names = zf.namelist()
        assert zf.read("fakefn/handler.py").startswith(b"import tinydep")
    assert "fakefn/static/index.html" in names
    assert "tinydep/core.py" in names and "tinydep-1.0.dist-info/METADATA" in names
    assert not [n for n in names if "/tests/" in n or "__pycache__" in n or n.endswith(".pyx")]
    # And the sizes reported are those of the files in the zip
    with zipfile.ZipFile(report.zip_path) as zf:
        assert report.unzipped_bytes == sum(i.file_size for i in zf.infolist())
        assert report.files == len(names)
    assert report.stripped_bytes >= 64 + 32  # at least the two caches
    assert report.sha256 == hashlib.sha256(report.zip_path.read_bytes()).hexdigest()
    sidecar = report.zip_path.with_name(report.zip_path.name + ".sha256")
    assert sidecar.read_text() == f"{report.sha256}  fake.zip\n"


def test_zip_is_deterministic_sorted_with_fixed_times_and_modes(fake_project, tmp_path):
    # Given the same inputs built twice, the second time with different file times
    first = _build(fake_project, tmp_path / "one")
    root = fake_project[0]
    for path in root.rglob("*"):
        if path.is_file():
            path.touch()
    second = _build(fake_project, tmp_path / "two")
    # Then both zips are the same bytes
    assert first.sha256 == second.sha256
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()
    # And entries are sorted, dated 1980-01-01, regular files with normalised permissions
    with zipfile.ZipFile(first.zip_path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {package.FIXED_DATE_TIME}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
    assert not [i for i in infos if i.is_dir()]


def test_a_bundle_over_the_limit_fails_with_its_size(fake_project, tmp_path):
    # Given a limit smaller than the bundle
    # When the artifact is built
    with pytest.raises(package.PackageError, match=r"unzipped exceeds the limit") as err:
        _build(fake_project, tmp_path / "out", limit_bytes=100)
    # Then no zip is left behind and the message names the biggest parts
    assert "fakefn" in str(err.value) or "tinydep" in str(err.value)
    assert not (tmp_path / "out" / "fake.zip").exists()


def test_a_missing_handler_module_fails_the_build(fake_project, tmp_path):
    # Given a handler path that names a module the code does not have
    root, wheels, requirements, _ = fake_project
    artifact = package.Artifact("fake", "none", ("fakefn",), "fakefn.lambda_entry.handler")
    # When the artifact is built, Then it fails and says which file is missing
    with pytest.raises(package.PackageError, match=r"fakefn/lambda_entry\.py"):
        package.build_artifact(
            artifact,
            requirements,
            tmp_path / "out",
            root=root,
            work_dir=tmp_path / "work",
            find_links=wheels,
            no_index=True,
        )


def test_import_check_runs_the_handler_module_from_the_bundle_alone(fake_project, tmp_path):
    # Given a CPython of Lambda's version on this machine (skip where there is none)
    if package.lambda_like_python() is None:
        pytest.skip(f"no CPython {package.PYTHON_VERSION} here")
    # When the artifact is built with the import check
    report = _build(fake_project, tmp_path / "out", smoke=True)
    # Then the check ran
    assert report.smoke_tested
    # And a handler whose dependency is missing from the bundle fails it
    root, wheels, _, artifact = fake_project
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(package.PackageError, match="tinydep"):
        package.build_artifact(
            artifact,
            empty,
            tmp_path / "out2",
            root=root,
            work_dir=tmp_path / "work",
            find_links=wheels,
            no_index=True,
            smoke=True,
        )


def test_cli_builds_the_real_api_artifact_with_its_dashboard(tmp_path):
    # Given the real API artifact, its locked dependencies replaced by one tiny wheel
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    requirements = tmp_path / "req.txt"
    requirements.write_text("tinydep==1.0\n")
    # When the CLI builds it offline
    code = package.main(
        [
            "--only",
            "duff-api",
            "--requirements",
            f"duff-api={requirements}",
            "--find-links",
            str(wheels),
            "--no-index",
            "--no-smoke",
            "--out",
            str(tmp_path / "dist"),
        ]
    )
    # Then it succeeds and the zip holds the handler and the dashboard, but no tests
    assert code == 0
    with zipfile.ZipFile(tmp_path / "dist" / "duff-api.zip") as zf:
        names = set(zf.namelist())
    assert "api/handler.py" in names and "api/static/index.html" in names
    assert not [n for n in names if n.startswith(("tests/", "ingestion/"))]
    # with the served-mart declarations, and without the local server's modules
    assert "api/served.json" in names and "api/backends/local.py" not in names


def test_cli_rejects_an_unknown_requirements_override(tmp_path, capsys):
    # Given an override for an artifact that does not exist
    code = package.main(["--requirements", "nope=x.txt", "--out", str(tmp_path)])
    # Then the CLI refuses it
    assert code == 1
    assert "NAME=FILE" in capsys.readouterr().out


def test_each_zip_holds_only_the_modules_its_handler_imports():
    # Given the real code; When the closures of the two handlers are taken
    root = package.ROOT
    closures = {
        a.name: package.import_closure(root, [a.handler_module, *a.also_import], a.code_dirs)
        for a in package.ARTIFACTS
    }
    api, ingest = closures["duff-api"], closures["duff-ingest"]
    # Then the Lambda paths are in, and what only the local server, the CLI or tests use is out
    assert {"api/handler.py", "api/backends/athena.py", "api/service.py"} <= api
    assert not api & {"api/backends/local.py", "api/server.py", "api/asgi.py", "api/demo.py"}
    assert not [f for f in api | ingest if f.startswith("tests/") or "fake" in f]
    assert {"ingestion/handler.py", "ingestion/land.py"} <= ingest
    assert "ingestion/sample.py" not in ingest and "ingestion/__main__.py" not in ingest


def test_a_module_the_handler_does_not_import_stays_out_and_a_missing_one_fails(
    fake_project, tmp_path
):
    root, *_ = fake_project
    (root / "fakefn" / "unused.py").write_text("import duckdb\n")
    report = _build(fake_project, tmp_path / "out")
    with zipfile.ZipFile(report.zip_path) as zf:
        assert "fakefn/unused.py" not in zf.namelist()
    (root / "fakefn" / "handler.py").write_text("from fakefn import gone\n")
    (root / "fakefn" / "__init__.py").write_text("from fakefn.gone import x\n")
    with pytest.raises(package.PackageError, match=r"fakefn\.gone is imported but fakefn/gone\.py"):
        _build(fake_project, tmp_path / "out2")
