"""Build the two Lambda artifacts (``make package``), reproducibly, from ``uv.lock``.

For each artifact:

1. export its dependency group from the lock (``uv export --frozen --only-group ...``, with
   hashes), so the zip holds exactly the locked versions;
2. install those wheels for Lambda's platform (Linux x86_64 manylinux_2_28, CPython 3.12,
   binary wheels only, hashes required) into a staging directory, whatever the host is;
3. strip what never runs in Lambda (``__pycache__``, bytecode, test suites, C/C++ headers and
   Cython sources, console scripts whose shebang names the build machine);
4. copy the code directories (``ingestion/``, ``api/`` with its ``static/`` dashboard), only
   the modules the handler imports (its module-level import closure, plus ``also_import``):
   a module only the local server or the tests use stays out, and a module the handler
   imports that is missing fails the build; the API zip also gets ``api/served.json``, the
   served-mart declarations of the models' yml (the Lambda has no dbt project);
5. check that the handler module is in the bundle and, when the host can run it (Linux
   x86_64, CPython 3.11), that it imports from the bundle alone;
6. write a deterministic zip: entries sorted, timestamps fixed to 1980-01-01, permissions
   normalised, so the same lock and code give the same bytes (and the same SHA-256) on every
   machine;
7. print the unzipped and zipped sizes and fail when the unzipped size exceeds Lambda's
   250 MB limit.

Outputs ``dist/<name>.zip`` and ``dist/<name>.zip.sha256``; ``infra/deploy.sh`` uploads them
under content-addressed keys. Exit code 0 on success, 1 on a failed build or check.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: 250 MB unzipped, function code and layers
# Lambda's python3.12 runtime runs on Amazon Linux 2023 (glibc 2.34). The python3.11 runtime
# runs on Amazon Linux 2 (glibc 2.26), which cannot load the locked pyarrow: its wheels are
# manylinux_2_28 only. Keep these in step with Runtime in infra/template.yaml.
PYTHON_VERSION = "3.12"
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip entry can hold

# Directory and file names that never run in Lambda.
STRIP_DIR_NAMES = frozenset({"__pycache__", "tests", "test"})
STRIP_DIR_PATHS = frozenset({"bin", "pyarrow/include", "pyarrow/src", "pyarrow/tests"})
STRIP_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# Arrow Flight (RPC) is never used and nothing else links it: about 36 MB of pyarrow.
# (libarrow_substrait stays: pyarrow's core extension modules link it.)
STRIP_GLOBS = (
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_flight.*.so",
    "pyarrow/flight.py",
)


class PackageError(RuntimeError):
    """A build step failed or a check refused the artifact; the message says which and why."""


@dataclass(frozen=True)
class Artifact:
    """One Lambda zip: its name, dependency group, code directories and handler."""

    name: str
    group: str
    code_dirs: tuple[str, ...]
    handler: str  # "module.path.function", as in infra/template.yaml
    # Modules the code imports lazily, imported too by the check (what stripping must not break).
    also_import: tuple[str, ...] = ()
    # Other entry points shipped in the same zip (other functions of the template run them).
    also_handlers: tuple[str, ...] = ()
    served_json: bool = False  # write api/served.json (the API's served-mart declarations)

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_file(self) -> str:
        return self.handler_module.replace(".", "/") + ".py"


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(
        "duff-ingest",
        "lambda-ingest",
        ("ingestion", "realtime"),
        "ingestion.handler.handler",
        also_handlers=("realtime.handler.handler",),
        also_import=(
            "realtime.handler",
            "realtime.landing",
            "realtime.dynamo_store",
            "ingestion.land",
            "ingestion.s3",
            "ingestion.glue",
            "pyarrow.parquet",
            "pyarrow.dataset",
            "pyarrow.compute",
            "pyarrow.csv",
            "pyarrow.fs",
            "boto3",
        ),
    ),
    Artifact(
        "duff-api",
        "lambda-api",
        ("api", "realtime"),  # /realtime/summary reads DynamoDB through realtime/ (no pyarrow)
        "api.handler.handler",
        also_import=(
            "api.backends.athena",
            "api.keystore",
            "realtime.dynamo_store",  # /realtime/summary imports it lazily
            "boto3",
        ),
        served_json=True,
    ),
)


@dataclass
class BuildReport:
    """What one build produced, for printing and for tests."""

    artifact: Artifact
    zip_path: Path
    sha256: str
    unzipped_bytes: int
    zipped_bytes: int
    files: int
    stripped_bytes: int
    largest: list[tuple[str, int]] = field(default_factory=list)
    smoke_tested: bool = False


def _run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise PackageError(f"cannot run {cmd[0]!r}: {exc}") from exc
    if done.returncode != 0:
        raise PackageError(
            f"{' '.join(cmd[:4])} ... failed (exit {done.returncode}):\n"
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def uv_command() -> list[str]:
    """``uv`` from PATH, else the ``python3 -m uv`` that ``make setup`` may have installed."""
    found = shutil.which("uv")
    if found:
        return [found]
    for python in ("python3", sys.executable):
        exe = shutil.which(python) or python
        probe = subprocess.run(  # noqa: S603 (fixed argv)
            [exe, "-m", "uv", "--version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [exe, "-m", "uv"]
    raise PackageError("uv is not installed; run `make setup` (it installs uv) and retry")


def export_requirements(group: str, dest: Path, *, root: Path = ROOT) -> Path:
    """Write the locked requirements (with hashes) of one dependency group to ``dest``."""
    out = _run(
        [
            *uv_command(),
            "export",
            "--frozen",
            "--only-group",
            group,
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--no-header",
        ],
        cwd=root,
    )
    dest.write_text(out, encoding="utf-8")
    return dest


def install_requirements(
    requirements: Path,
    target: Path,
    *,
    find_links: Path | None = None,
    no_index: bool = False,
) -> None:
    """Install binary wheels for Lambda's platform into ``target`` (no dependency resolution:
    the exported lock is already complete and pinned)."""
    cmd = [
        *uv_command(),
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--python",
        sys.executable,
        "--python-platform",
        PYTHON_PLATFORM,
        "--python-version",
        PYTHON_VERSION,
        "--only-binary",
        ":all:",
        "--no-deps",
        "--link-mode",
        "copy",
        "-r",
        str(requirements),
    ]
    if "--hash=" in requirements.read_text(encoding="utf-8"):
        cmd.append("--require-hashes")
    if find_links is not None:
        cmd += ["--find-links", str(find_links)]
    if no_index:
        cmd.append("--no-index")
    _run(cmd)


def _tree_bytes(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def strip_tree(base: Path) -> int:
    """Remove what never runs in Lambda from ``base``; return the bytes removed."""
    removed = 0
    for rel in sorted(STRIP_DIR_PATHS):
        victim = base / rel
        if victim.exists():
            removed += _tree_bytes(victim)
            shutil.rmtree(victim)
    for pattern in STRIP_GLOBS:
        for victim in sorted(base.glob(pattern)):
            removed += victim.lstat().st_size
            victim.unlink()
    # Walk top-down so a removed directory is not descended into.
    for dirpath, dirnames, filenames in os.walk(base, topdown=True):
        here = Path(dirpath)
        for name in list(dirnames):
            # Top-level "tests"/"test" packages are real packages (none in our groups today),
            # a nested one is a package's test suite.
            if name == "__pycache__" or (name in STRIP_DIR_NAMES and here != base):
                removed += _tree_bytes(here / name)
                shutil.rmtree(here / name)
                dirnames.remove(name)
        for name in filenames:
            if name.endswith(STRIP_SUFFIXES):
                removed += (here / name).lstat().st_size
                (here / name).unlink()
    return removed


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def import_closure(root: Path, modules: Iterable[str], packages: Iterable[str]) -> set[str]:
    """The files (relative to ``root``) of ``modules`` and of every module of ``packages``
    they import at module level, transitively, with their packages' ``__init__.py``.

    Imports inside functions are lazy (the local backend inside ``make_backend``): they
    count only when named in ``modules``. ``if TYPE_CHECKING:`` blocks never run.
    """
    ours = tuple(packages)
    seen: set[str] = set()
    files: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or module.split(".")[0] not in ours:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:
            expected = module.replace(".", "/") + ".py"
            raise PackageError(f"{module} is imported but {expected} is not under {root}")
        files.add(path.relative_to(root).as_posix())
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in [node] if not isinstance(node, ast.Try | ast.If) else ast.walk(node):
                if isinstance(sub, ast.Import):
                    todo += [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    if sub.level:
                        anchor = parts if is_package else parts[:-1]
                        anchor = anchor[: len(anchor) - sub.level + 1]
                        base = ".".join(anchor + ([sub.module] if sub.module else []))
                    else:
                        base = sub.module or ""
                    todo.append(base)
                    todo += [
                        f"{base}.{a.name}"
                        for a in sub.names
                        if _module_file(root, f"{base}.{a.name}")
                    ]
    return files


def copy_code(
    code_dirs: Iterable[str],
    dest: Path,
    *,
    root: Path = ROOT,
    keep_modules: set[str] | None = None,
) -> None:
    """Copy our own packages, without bytecode caches; with ``keep_modules`` (files relative
    to ``root``), only those of the Python modules (data files all stay)."""
    for name in code_dirs:
        src = root / name
        if not (src / "__init__.py").is_file():
            raise PackageError(f"{src} is not a Python package (no __init__.py)")
        target = dest / name
        if target.exists():
            raise PackageError(f"{name}/ is both a dependency in the bundle and our code directory")
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
        if keep_modules is not None:
            for path in sorted(target.rglob("*.py")):
                if path.relative_to(dest).as_posix() not in keep_modules:
                    path.unlink()


def bundle_files(base: Path) -> list[tuple[str, Path]]:
    """Every regular file under ``base`` as (zip name, path), sorted by zip name."""
    files: list[tuple[str, Path]] = []
    for path in base.rglob("*"):
        if path.is_symlink():
            raise PackageError(f"{path} is a symlink; Lambda zips should hold plain files")
        if path.is_file():
            files.append((path.relative_to(base).as_posix(), path))
    files.sort(key=lambda item: item[0])
    return files


def write_deterministic_zip(base: Path, out: Path) -> None:
    """Zip ``base`` so that the same files give the same bytes: sorted names, fixed times,
    normalised permissions (0644, or 0755 when executable), no directory entries."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name, path in bundle_files(base):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
                info.create_system = 3  # Unix, so external_attr carries the mode
                executable = path.stat().st_mode & stat.S_IXUSR
                mode = 0o755 if executable else 0o644
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with path.open("rb") as fh:
                    zf.writestr(info, fh.read(), compresslevel=9)
        tmp.chmod(0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lambda_like_python() -> str | None:
    """A CPython of Lambda's version on a Linux x86_64 host (so the import check means
    something), or None. ``DUFF_PACKAGE_PYTHON`` names one explicitly."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    candidates = [os.environ.get("DUFF_PACKAGE_PYTHON", ""), f"python{PYTHON_VERSION}"]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION:
        candidates.insert(1, sys.executable)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        str(p / "bin" / f"python{PYTHON_VERSION}")
        for p in (pyenv_root / "versions").glob(f"{PYTHON_VERSION}.*")
    )
    for candidate in candidates:
        if not candidate:
            continue
        exe = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if not exe:
            continue
        probe = subprocess.run(  # noqa: S603 (fixed argv)
            [exe, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == PYTHON_VERSION:
            return exe
    return None


def smoke_import(base: Path, handler: str, python: str, also_import: Sequence[str] = ()) -> None:
    """Import the handler (and ``also_import``) from the bundle alone (``-S``: no
    site-packages, no venv), as Lambda will."""
    module, func = handler.rsplit(".", 1)
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(base)!r})\n"
        f"mod = importlib.import_module({module!r})\n"
        f"assert callable(getattr(mod, {func!r}, None)), 'no callable {func} in {module}'\n"
        f"assert mod.__file__.startswith({str(base)!r}), mod.__file__\n"
        f"for name in {list(also_import)!r}:\n"
        "    extra = importlib.import_module(name)\n"
        f"    assert extra.__file__.startswith({str(base)!r}), extra.__file__\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", tempfile.gettempdir()),
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    _run([python, "-S", "-c", code], env=env)


def largest_top_level(base: Path, count: int = 5) -> list[tuple[str, int]]:
    sizes = [(p.name, _tree_bytes(p)) for p in base.iterdir() if not p.name.endswith(".dist-info")]
    sizes.sort(key=lambda item: (-item[1], item[0]))
    return sizes[:count]


def build_artifact(
    artifact: Artifact,
    requirements: Path,
    out_dir: Path,
    *,
    root: Path = ROOT,
    work_dir: Path | None = None,
    find_links: Path | None = None,
    no_index: bool = False,
    limit_bytes: int = LAMBDA_LIMIT_BYTES,
    smoke: bool | None = None,
) -> BuildReport:
    """Build one zip from a requirements file; raise PackageError when a check fails."""
    work_parent = work_dir or (root / "build" / "lambda")
    work_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_parent, prefix=f"{artifact.name}.") as tmp:
        base = Path(tmp) / "bundle"
        base.mkdir()
        install_requirements(requirements, base, find_links=find_links, no_index=no_index)
        stripped = strip_tree(base)
        closure = import_closure(
            root, [artifact.handler_module, *artifact.also_import], artifact.code_dirs
        )
        copy_code(artifact.code_dirs, base, root=root, keep_modules=closure)
        if artifact.served_json:
            if str(ROOT) not in sys.path:  # run as a script: infra/ is on the path, not the root
                sys.path.insert(0, str(ROOT))
            from api.declarations import from_project, to_json

            (base / "api" / "served.json").write_text(to_json(from_project(root)), "utf-8")
        stripped += strip_tree(base)
        if not (base / artifact.handler_file).is_file():
            raise PackageError(
                f"{artifact.name}: handler {artifact.handler} needs {artifact.handler_file}, "
                "which is not in the bundle"
            )
        files = bundle_files(base)
        unzipped = sum(path.stat().st_size for _, path in files)
        largest = largest_top_level(base)
        if unzipped > limit_bytes:
            detail = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest)
            raise PackageError(
                f"{artifact.name}: {unzipped / 1e6:.1f} MB unzipped exceeds the limit of "
                f"{limit_bytes / 1e6:.1f} MB (largest: {detail})"
            )
        python = lambda_like_python() if smoke is not False else None
        if smoke and python is None:
            raise PackageError(f"no CPython {PYTHON_VERSION} on Linux x86_64 for the import check")
        do_smoke = python is not None
        if python is not None:
            smoke_import(base, artifact.handler, python, artifact.also_import)
        zip_path = out_dir / f"{artifact.name}.zip"
        write_deterministic_zip(base, zip_path)
    digest = sha256_of(zip_path)
    (out_dir / f"{artifact.name}.zip.sha256").write_text(
        f"{digest}  {zip_path.name}\n", encoding="utf-8"
    )
    return BuildReport(
        artifact=artifact,
        zip_path=zip_path,
        sha256=digest,
        unzipped_bytes=unzipped,
        zipped_bytes=zip_path.stat().st_size,
        files=len(files),
        stripped_bytes=stripped,
        largest=largest,
        smoke_tested=do_smoke,
    )


def describe(report: BuildReport) -> str:
    mb = 1024 * 1024
    largest = ", ".join(f"{name} {size / mb:.1f}" for name, size in report.largest)
    check = "passed" if report.smoke_tested else f"skipped (no CPython {PYTHON_VERSION} here)"
    return (
        f"{report.zip_path.name}: {report.unzipped_bytes / mb:.1f} MiB unzipped "
        f"(limit {LAMBDA_LIMIT_BYTES / mb:.0f}), {report.zipped_bytes / mb:.1f} MiB zipped, "
        f"{report.files} files, {report.stripped_bytes / mb:.1f} MiB stripped, "
        f"import check {check}"
        f"\n  sha256 {report.sha256}\n  largest (MiB): {largest}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument(
        "--only",
        choices=[a.name for a in ARTIFACTS],
        action="append",
        help="build only this artifact (repeatable)",
    )
    parser.add_argument(
        "--requirements",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="use FILE instead of the lock's export for artifact NAME (tests, debugging)",
    )
    parser.add_argument("--find-links", type=Path, help="extra directory of wheels")
    parser.add_argument("--no-index", action="store_true", help="do not reach any index")
    parser.add_argument(
        "--limit-mb", type=float, default=LAMBDA_LIMIT_BYTES / (1024 * 1024), help="MiB"
    )
    parser.add_argument(
        "--no-smoke", action="store_true", help="skip importing the handler from the bundle"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict[str, Path] = {}
    for item in args.requirements:
        name, sep, file = item.partition("=")
        if not sep or name not in {a.name for a in ARTIFACTS}:
            print(f"package: --requirements wants NAME=FILE with a known NAME: {item!r}")
            return 1
        overrides[name] = Path(file).resolve()
    wanted = [a for a in ARTIFACTS if not args.only or a.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for artifact in wanted:
        try:
            requirements = overrides.get(artifact.name) or export_requirements(
                artifact.group, args.out / f"{artifact.name}.requirements.txt"
            )
            report = build_artifact(
                artifact,
                requirements,
                args.out,
                find_links=args.find_links,
                no_index=args.no_index,
                limit_bytes=int(args.limit_mb * 1024 * 1024),
                smoke=False if args.no_smoke else None,
            )
        except PackageError as exc:
            print(f"package: FAILED {artifact.name}: {exc}", file=sys.stderr)
            failed = True
            continue
        print(describe(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
