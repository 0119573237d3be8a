"""`smartshelf update`: install a release side by side, check it, switch atomically, roll back on failure.

Layout under the prefix (default ``/opt/smartshelf``)::

    releases/<version>-<digest>/     the release's source tree (device/, admin_web/, models/, systemd/ ...)
    releases/<version>-<digest>/venv its own virtual environment (``venv/bin/smartshelf``)
    releases/<...>/release.json      written last: a release without it is incomplete and ignored
    current  -> releases/<...>       what the systemd units run (/opt/smartshelf/current/venv/bin/smartshelf)
    previous -> releases/<...>       the release before, for ``smartshelf update --rollback``

A source tree (a git checkout, optionally at ``--ref``) is copied into the release folder and
installed into the release's venv by pip itself (``pip install --no-deps --no-build-isolation``: a
real, non-editable install with pip's own launcher and RECORD; no package index is needed, the build
backend is the venv's setuptools, on a Pi the distribution's python3-setuptools). A wheel is
installed with pip (``--no-deps``; its dependencies as below).

System packages: on a Raspberry Pi (``/proc/device-tree/model`` names one; ``SMARTSHELF_MODEL_FILE``
overrides the file) the venv sees the distribution's numpy, OpenCV, picamera2 and lgpio
(``--system-site-packages``) by default, and an update follows the current release's record
(``"system_packages"``) unless ``--system-packages``/``--no-system-packages`` says otherwise. pip then
installs the other dependencies under a constraint that pins numpy to the system's version and never
installs numpy or opencv-python-headless itself.

Before switching, ``smartshelf doctor`` runs from the new release (hardware checks skipped: the
running device holds the camera), and with system packages the release's python must import the
camera and GPIO stacks (picamera2, lgpio, gpiozero; importing opens no hardware). A check that fails
there but passed with the current release stops the update, and the new release is removed. After the switch the services are restarted and
must come up active, or the previous release is switched back and restarted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from smartshelf.core.atomic import FileLock, atomic_write_json, fsync_dir
from smartshelf.core.config import DEFAULT_CONFIG_PATH, resolve_config_path
from smartshelf.core.errors import SmartShelfError, StorageError

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = Path("/opt/smartshelf")
SERVICES = ("smartshelf-device.service", "smartshelf-admin.service")
#: Checks the pre-switch doctor skips: the running services hold the camera, GPIO and the port.
DOCTOR_SKIP = ("camera", "gpio", "admin_port", "time_sync")
RELEASE_FILE = "release.json"
#: Never copied into a release from a source tree.
EXCLUDE_DIRS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "build", "dist", "node_modules"}
EXCLUDE_PREFIXES = (".venv",)
SYSTEM_PACKAGES = {"numpy", "opencv-python-headless", "opencv-python", "opencv-contrib-python"}
#: The device tree's model string on a Raspberry Pi ("Raspberry Pi 4 Model B Rev 1.4").
MODEL_FILE = Path("/proc/device-tree/model")
#: Imported by the release's python before the switch when it uses the system packages: the camera
#: and GPIO stacks from apt (importing them opens no camera and no GPIO chip).
HARDWARE_STACK = ("picamera2", "lgpio", "gpiozero")


def is_raspberry_pi(model_file: Path | None = None) -> bool:
    """Whether this machine is a Raspberry Pi (``SMARTSHELF_MODEL_FILE`` overrides the model file)."""
    path = model_file or Path(os.environ.get("SMARTSHELF_MODEL_FILE") or MODEL_FILE)
    try:
        return "raspberry pi" in path.read_bytes().decode("utf-8", "replace").lower()
    except OSError:
        return False


class UpdateError(SmartShelfError, RuntimeError):
    """An update could not be installed, checked or switched to; the message says which step."""


@dataclass(frozen=True)
class Source:
    """What to install: a source tree (``kind == "tree"``) or a wheel file."""

    kind: str
    path: Path
    version: str
    digest: str
    files: tuple[str, ...] = ()

    @property
    def release_name(self) -> str:
        return f"{self.version}-{self.digest[:10]}"


# --- reading a source ---------------------------------------------------------------------------


def _pyproject(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UpdateError(f"{root} is not a smartshelf source tree: {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UpdateError(f"{path}: not valid TOML: {exc}") from None


def _tree_files(root: Path) -> list[str]:
    """Files of a source tree: git's tracked + untracked-not-ignored files, else a filtered walk."""
    if (root / ".git").exists() and shutil.which("git"):
        result = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=False,
        )
        if result.returncode == 0:
            names = [n for n in result.stdout.decode().split("\0") if n]
            return sorted(n for n in names if (root / n).is_file() and not _excluded(n))
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in EXCLUDE_DIRS and not d.startswith(EXCLUDE_PREFIXES) and not d.endswith(".egg-info")
        ]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if not _excluded(rel):
                files.append(rel)
    return sorted(files)


def _excluded(rel: str) -> bool:
    parts = Path(rel).parts
    return any(
        p in EXCLUDE_DIRS or p.startswith(EXCLUDE_PREFIXES) or p.endswith(".egg-info") for p in parts[:-1]
    ) or rel.endswith((".pyc", ".pyo"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_source(path: Path, ref: str | None = None, workdir: Path | None = None) -> Source:
    """Describe ``path`` (source tree or .whl); with ``ref``, export that git ref into ``workdir`` first."""
    path = Path(path)
    if not path.exists():
        raise UpdateError(f"--from {path}: no such file or directory")
    if path.is_file():
        if path.suffix != ".whl":
            raise UpdateError(f"--from {path}: expected a source tree (folder) or a .whl file")
        parts = path.name.split("-")
        if len(parts) < 5 or parts[0] != "smartshelf":
            raise UpdateError(f"--from {path}: not a smartshelf wheel file name")
        return Source("wheel", path, parts[1], _sha256(path))
    if ref is not None:
        if workdir is None:
            raise UpdateError("--ref needs a work folder")
        path = _export_ref(path, ref, workdir)
    project = _pyproject(path).get("project", {})
    if project.get("name") != "smartshelf":
        raise UpdateError(f"{path}/pyproject.toml: project.name is {project.get('name')!r}, not 'smartshelf'")
    files = _tree_files(path)
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode() + b"\0" + _sha256(path / rel).encode() + b"\n")
    return Source("tree", path, str(project.get("version", "0")), digest.hexdigest(), tuple(files))


def _export_ref(repo: Path, ref: str, workdir: Path) -> Path:
    if not shutil.which("git"):
        raise UpdateError("--ref needs git; fix: sudo apt-get install git")
    dest = workdir / "export"
    dest.mkdir(parents=True)
    archive = workdir / "export.tar"
    result = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", "-o", str(archive), ref],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UpdateError(f"git archive {ref!r} in {repo} failed: {result.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def dependencies(source: Source) -> list[str]:
    """Runtime requirement strings of a source (pyproject dependencies or wheel Requires-Dist)."""
    if source.kind == "tree":
        return list(_pyproject(source.path).get("project", {}).get("dependencies", []))
    with zipfile.ZipFile(source.path) as whl:
        meta_name = next((n for n in whl.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise UpdateError(f"{source.path}: wheel has no METADATA")
        meta = whl.read(meta_name).decode()
    reqs = []
    for line in meta.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            if "extra ==" not in req:
                reqs.append(req)
    return reqs


def requirement_name(req: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


# --- the installer --------------------------------------------------------------------------------


@dataclass
class Options:
    prefix: Path = DEFAULT_PREFIX
    config: Path | None = None
    restart: bool = True
    doctor: bool = True
    system_packages: bool | None = False
    """True/False as given; None: follow the current release's record, else True on a Raspberry Pi."""
    install_deps: bool = True
    pip_args: tuple[str, ...] = ()
    site_packages: tuple[Path, ...] = ()
    python: str = sys.executable
    systemctl: str = "systemctl"
    keep: int = 3
    dry_run: bool = False


class Updater:
    """Installs, checks, switches and rolls back releases under one prefix."""

    def __init__(self, options: Options, out: Any = None) -> None:
        self.o = options
        self.out = out or sys.stdout
        self.releases = options.prefix / "releases"
        self.current = options.prefix / "current"
        self.previous = options.prefix / "previous"
        if options.system_packages is None:
            options.system_packages = self._default_system_packages()

    def _default_system_packages(self) -> bool:
        """Follow the current release's ``system_packages``; without one, use them on a Raspberry Pi."""
        current = self.release_of(self.current)
        if current is not None:
            try:
                recorded = json.loads((current / RELEASE_FILE).read_text()).get("system_packages")
            except (OSError, ValueError):
                recorded = None
            if isinstance(recorded, bool):
                return recorded
        return is_raspberry_pi()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # state
    def release_of(self, link: Path) -> Path | None:
        if not link.is_symlink():
            return None
        target = (link.parent / os.readlink(link)).resolve()
        return target if (target / RELEASE_FILE).is_file() else None

    def installed(self) -> list[Path]:
        if not self.releases.is_dir():
            return []
        found = [p for p in self.releases.iterdir() if (p / RELEASE_FILE).is_file()]
        return sorted(found, key=lambda p: json.loads((p / RELEASE_FILE).read_text()).get("installed_at", 0))

    # steps
    def install(self, source: Source) -> Path:
        dest = self.releases / source.release_name
        if (dest / RELEASE_FILE).is_file():
            self.say(f"release {source.release_name} is already installed")
            return dest
        if self.o.dry_run:
            self.say(f"would install release {source.release_name} from {source.path} into {dest}")
            self.say(
                f"would create venv {dest / 'venv'}"
                + (" (--system-site-packages)" if self.o.system_packages else "")
            )
            self._plan_deps(source, dest)
            return dest
        if dest.exists():
            self.say(f"removing incomplete release {dest}")
            shutil.rmtree(dest)
        self.releases.mkdir(parents=True, exist_ok=True)
        dest.mkdir()
        try:
            self._populate(source, dest)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest

    def _populate(self, source: Source, dest: Path) -> None:
        if source.kind == "tree":
            self.say(f"copying {len(source.files)} files from {source.path}")
            for rel in source.files:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.path / rel, target)
                # world-readable whatever the source tree's modes: the services run as another user
                executable = os.stat(source.path / rel).st_mode & 0o100
                target.chmod(0o755 if executable else 0o644)
        venv = dest / "venv"
        cmd = [self.o.python, "-m", "venv"]
        if self.o.system_packages or self.o.site_packages:
            cmd.append("--system-site-packages")
        if not self.o.install_deps:
            # nothing else to pip-install: the release itself is installed by the creating
            # interpreter's pip (pip --python), which saves the venv its own copy of pip
            cmd.append("--without-pip")
        self._run([*cmd, str(venv)], "create the venv")
        python = venv / "bin" / "python"
        purelib = Path(
            self._output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        )
        if self.o.site_packages:
            (purelib / "smartshelf-extra-site.pth").write_text(
                "".join(f"{p.resolve()}\n" for p in self.o.site_packages)
            )
        self._install_deps(source, python, dest)
        if source.kind == "tree":
            self._pip_install_tree(python, dest)
        else:
            self._run(
                [str(python), "-m", "pip", "install", "--no-deps", *self.o.pip_args, str(source.path)],
                "pip install the wheel",
            )
        record = {
            "name": source.release_name,
            "version": source.version,
            "digest": source.digest,
            "kind": source.kind,
            "source": str(source.path),
            "installed_at": time.time(),
            "system_packages": self.o.system_packages,
        }
        try:
            atomic_write_json(dest / RELEASE_FILE, record, indent=2)
        except StorageError as exc:
            raise UpdateError(str(exc)) from exc
        self.say(f"installed release {source.release_name} in {dest}")

    def _deps_plan(self, source: Source) -> list[str]:
        deps = dependencies(source)
        if self.o.system_packages:
            deps = [d for d in deps if requirement_name(d) not in SYSTEM_PACKAGES]
        return deps

    def _plan_deps(self, source: Source, dest: Path) -> None:
        if not self.o.install_deps:
            self.say("would skip dependencies (--no-deps)")
        else:
            pin = " with numpy pinned to the system's version" if self.o.system_packages else ""
            self.say(f"would pip install{pin}: {' '.join(self._deps_plan(source))}")
        if source.kind == "tree":
            self.say(f"would pip install --no-deps --no-build-isolation {dest}")
        else:
            self.say(f"would pip install --no-deps {source.path}")

    def _install_deps(self, source: Source, python: Path, dest: Path) -> None:
        if not self.o.install_deps:
            return
        deps = self._deps_plan(source)
        if not deps:
            return
        req = dest / "requirements-runtime.txt"
        req.write_text("\n".join(deps) + "\n")
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(req)]
        if self.o.system_packages:
            version = self._output([str(python), "-c", "import numpy; print(numpy.__version__)"], check=False)
            if not re.fullmatch(r"[0-9][0-9A-Za-z.+]*", version):
                raise UpdateError(
                    "the system numpy is not importable from the release venv; fix: sudo apt-get install "
                    "python3-numpy python3-opencv python3-picamera2"
                )
            constraints = dest / "constraints-system.txt"
            constraints.write_text(
                f"# the distribution's numpy (apt python3-numpy); never replaced by pip\nnumpy=={version}\n"
            )
            cmd += ["-c", str(constraints)]
        self._run([*cmd, *self.o.pip_args], "pip install the dependencies")

    def _pip_install_tree(self, python: Path, dest: Path) -> None:
        """A real (non-editable) install of the release tree into its venv, built by the venv's
        setuptools without build isolation (no index needed)."""
        pip = [str(python), "-m", "pip"] if self.o.install_deps else [self.o.python, "-m", "pip", "--python", str(python)]
        result = subprocess.run(
            [*pip, "install", "--no-deps", "--no-build-isolation", "--no-cache-dir", "--disable-pip-version-check",
             *self.o.pip_args, str(dest)],
            capture_output=True, text=True, check=False, cwd=dest,
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip()[-3000:]
            fix = ""
            if "setuptools" in tail or "bdist_wheel" in tail:
                fix = "\nfix: sudo apt-get install python3-setuptools python3-wheel (the venv builds the release with them)"
            raise UpdateError(f"could not pip install the release tree {dest}:\n{tail}{fix}")
        for leftover in ("build", "smartshelf.egg-info"):  # pip's in-tree build output
            shutil.rmtree(dest / leftover, ignore_errors=True)

    def import_check(self, release: Path) -> set[str]:
        """The hardware-stack modules the release's python cannot import (HARDWARE_STACK)."""
        python = release / "venv" / "bin" / "python"
        code = (
            "import importlib, json, sys\nfailed = []\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except Exception as exc:\n        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print(json.dumps(failed))\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        # gpiozero picks a pin factory only when a device is made; importing it touches no pin
        result = subprocess.run([str(python), "-c", code, *HARDWARE_STACK], capture_output=True, text=True,
                                timeout=120, check=False, cwd=release, env=env)
        try:
            failed = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {f"python: {result.stderr.strip()[-300:]}"}
        return set(failed)

    def doctor(self, release: Path) -> tuple[bool, set[str], str]:
        """Run the release's doctor (hardware skipped); (ran_ok, failed check names, output)."""
        cmd = [
            str(release / "venv" / "bin" / "smartshelf"),
            "doctor",
            "--json",
            "--skip",
            ",".join(DOCTOR_SKIP),
        ]
        if self.o.config is not None:
            cmd += ["--config", str(self.o.config)]
        try:
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=300, check=False, cwd=release, env=env
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, {"doctor"}, str(exc)
        try:
            report = json.loads(result.stdout)
            failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
        except (ValueError, KeyError, TypeError):
            return False, {"doctor"}, (result.stdout + result.stderr)[-2000:]
        return result.returncode == 0, failed, result.stdout

    def switch(self, release: Path) -> None:
        """Point ``current`` at ``release`` (and ``previous`` at the old one) with atomic renames."""
        old = self.release_of(self.current)
        if old == release.resolve():
            self.say(f"current already is {release.name}")
            return
        if self.o.dry_run:
            self.say(f"would switch {self.current} -> releases/{release.name}")
            return
        if old is not None:
            _atomic_symlink(self.previous, f"releases/{old.name}")
        _atomic_symlink(self.current, f"releases/{release.name}")
        self.say(f"switched current -> {release.name}" + (f" (previous: {old.name})" if old else ""))

    def restart(self) -> bool:
        if not self.o.restart:
            self.say("not restarting the services (--no-restart)")
            return True
        if self.o.dry_run:
            self.say(f"would run: {self.o.systemctl} restart {' '.join(SERVICES)}")
            return True
        self.say(f"restarting {' '.join(SERVICES)}")
        result = subprocess.run(
            [self.o.systemctl, "restart", *SERVICES], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            self.say(f"systemctl restart failed: {result.stderr.strip()}")
            return False
        for unit in SERVICES:
            active = subprocess.run([self.o.systemctl, "is-active", "--quiet", unit], check=False)
            if active.returncode != 0:
                self.say(f"{unit} is not active after the restart; see: journalctl -u {unit}")
                return False
        return True

    def prune(self) -> None:
        keep = {p for p in (self.release_of(self.current), self.release_of(self.previous)) if p}
        releases = self.installed()
        for old in releases[: max(0, len(releases) - self.o.keep)]:
            if old.resolve() not in keep and not self.o.dry_run:
                self.say(f"removing old release {old.name}")
                shutil.rmtree(old, ignore_errors=True)

    # whole operations
    def update(self, source: Source) -> int:
        old = self.release_of(self.current)
        existed = (self.releases / source.release_name / RELEASE_FILE).is_file()
        if old is not None and old.name == source.release_name:
            self.say(f"release {source.release_name} is already installed and current; nothing to do")
            return 0
        release = self.install(source)
        if self.o.dry_run:
            if self.o.doctor:
                self.say(f"would run doctor from the new release (skipping {', '.join(DOCTOR_SKIP)})")
            if self.o.system_packages:
                self.say(f"would check that the new release imports {', '.join(HARDWARE_STACK)}")
            self.switch(release)
            self.restart()
            return 0
        if self.o.doctor:
            ok, failed, output = self.doctor(release)
            if not ok:
                before: set[str] = set()
                if old is not None:
                    _, before, _ = self.doctor(old)
                regressions = failed - before if old is not None else failed
                if regressions:
                    self.say(output.rstrip())
                    self.say(f"doctor from {source.release_name} fails: {', '.join(sorted(regressions))}")
                    if not existed:
                        shutil.rmtree(release, ignore_errors=True)
                    raise UpdateError(
                        f"release {source.release_name} failed its checks ({', '.join(sorted(regressions))}); "
                        f"staying on {old.name if old else 'no release'}"
                    )
                self.say(f"doctor: the same checks fail as before ({', '.join(sorted(failed))}); going on")
            else:
                self.say("doctor: all checks pass")
        if self.o.system_packages:
            self._check_hardware_stack(release, old, remove=not existed)
        self.switch(release)
        if not self.restart():
            if old is None:
                raise UpdateError(
                    "the services did not come up and there is no previous release to roll back to"
                )
            self.say(f"rolling back to {old.name}")
            _atomic_symlink(self.current, f"releases/{old.name}")
            _atomic_symlink(self.previous, f"releases/{release.name}")
            self.restart()
            raise UpdateError(f"release {release.name} did not start; rolled back to {old.name}")
        self.prune()
        return 0

    def _check_hardware_stack(self, release: Path, old: Path | None, *, remove: bool) -> None:
        """Refuse a release whose python cannot import the camera/GPIO stack the current one can."""
        failed = self.import_check(release)
        if not failed:
            self.say(f"imports: {', '.join(HARDWARE_STACK)} ok")
            return
        names = {f.split(":", 1)[0] for f in failed}
        before = {f.split(":", 1)[0] for f in self.import_check(old)} if old is not None else set()
        regressions = names - before
        if not regressions:
            self.say(f"imports: {', '.join(sorted(names))} fail as before ({'; '.join(sorted(failed))}); going on")
            return
        if remove:
            shutil.rmtree(release, ignore_errors=True)
        raise UpdateError(
            f"release {release.name} cannot import the camera/GPIO stack ({'; '.join(sorted(failed))}); "
            f"staying on {old.name if old else 'no release'}. fix: sudo apt-get install python3-picamera2 "
            "python3-lgpio python3-gpiozero, and update with --system-packages"
        )

    def rollback(self) -> int:
        previous = self.release_of(self.previous)
        if previous is None:
            raise UpdateError(f"no previous release to roll back to ({self.previous} is missing)")
        self.switch(previous)
        if not self.restart():
            raise UpdateError(f"the services did not come up on {previous.name}; see journalctl")
        return 0

    # helpers
    def _run(self, cmd: Sequence[str], what: str) -> None:
        logger.debug("running %s", cmd)
        result = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip()[-3000:]
            raise UpdateError(f"could not {what} ({' '.join(cmd[:4])} ...):\n{tail}")

    def _output(self, cmd: Sequence[str], check: bool = True) -> str:
        result = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise UpdateError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
        return result.stdout.strip()


def _atomic_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


class _Lock:
    """One update at a time per prefix: :class:`~smartshelf.core.atomic.FileLock` on ``.update.lock``,
    not waiting (a second update is refused at once)."""

    def __init__(self, prefix: Path, dry_run: bool) -> None:
        self.lock = FileLock(prefix / ".update", timeout=0)
        self.active = not dry_run and prefix.is_dir()

    def __enter__(self) -> Self:
        if self.active:
            try:
                self.lock.acquire()
            except StorageError:
                raise UpdateError(f"another update is running ({self.lock.lock_path} is locked)") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            self.lock.release()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "update",
        help="install a new release beside the current one, check it, switch, restart (rolls back on failure)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--from", dest="source", type=Path, help="source tree (git checkout) or smartshelf-*.whl")
    p.add_argument(
        "--ref", help="with a git checkout in --from: install this commit/tag/branch (git archive)"
    )
    p.add_argument("--rollback", action="store_true", help="switch back to the previous release")
    p.add_argument(
        "--prefix", type=Path, default=DEFAULT_PREFIX, help=f"install prefix (default {DEFAULT_PREFIX})"
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"config for doctor (default {DEFAULT_CONFIG_PATH} if present)",
    )
    p.add_argument("--no-restart", action="store_true", help="do not restart the systemd services")
    p.add_argument(
        "--no-doctor", action="store_true", help="switch without running doctor first (first install)"
    )
    packages = p.add_mutually_exclusive_group()
    packages.add_argument(
        "--system-packages",
        action="store_const",
        const=True,
        default=None,
        help="Raspberry Pi mode: the venv uses apt's numpy/OpenCV/picamera2/lgpio; pip never installs numpy or "
        "OpenCV (default: as the current release, else on when /proc/device-tree/model names a Raspberry Pi)",
    )
    packages.add_argument(
        "--no-system-packages",
        dest="system_packages",
        action="store_const",
        const=False,
        help="a self-contained venv (pip installs numpy and OpenCV wheels)",
    )
    p.add_argument(
        "--no-deps", action="store_true", help="install no dependencies (they are already reachable)"
    )
    p.add_argument(
        "--pip-arg", action="append", default=[], help="extra pip argument, e.g. --pip-arg=--no-index"
    )
    p.add_argument(
        "--site-packages",
        action="append",
        type=Path,
        default=[],
        help="extra site-packages folder for the venv",
    )
    p.add_argument("--python", default=sys.executable, help="interpreter that creates the venv")
    p.add_argument("--keep", type=int, default=3, help="releases to keep (besides current and previous)")
    p.add_argument("--dry-run", action="store_true", help="print what would be done")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = resolve_config_path(args.config)
    options = Options(
        prefix=args.prefix,
        config=config,
        restart=not args.no_restart,
        doctor=not args.no_doctor,
        system_packages=args.system_packages,
        install_deps=not args.no_deps,
        pip_args=tuple(args.pip_arg),
        site_packages=tuple(args.site_packages),
        python=args.python,
        systemctl=os.environ.get("SMARTSHELF_SYSTEMCTL", "systemctl"),
        keep=max(1, args.keep),
        dry_run=args.dry_run,
    )
    updater = Updater(options)
    if args.rollback:
        with _Lock(args.prefix, args.dry_run):
            return updater.rollback()
    if args.source is None:
        raise UpdateError("give --from PATH (source tree or wheel) or --rollback")
    with tempfile.TemporaryDirectory(prefix="smartshelf-update-") as work:
        source = read_source(args.source, args.ref, Path(work))
        if not args.dry_run:
            args.prefix.mkdir(parents=True, exist_ok=True)
        with _Lock(args.prefix, args.dry_run):
            return updater.update(source)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smartshelf.installer.update ...``: the same command without the other CLI modules.

    setup.sh runs it with the distribution's python before any venv exists (this module and
    smartshelf.core.config need only the standard library).
    """
    parser = argparse.ArgumentParser(prog="smartshelf")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["update", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except SmartShelfError as exc:
        print(f"smartshelf: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
