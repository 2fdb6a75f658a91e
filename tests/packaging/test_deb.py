"""The Debian package, built from a clean copy and checked by extraction only.

Nothing here installs the package on this machine: its files are looked at
with ``dpkg-deb``, its Python code is imported with the system interpreter
from an extracted copy, and its maintainer scripts run against a temporary
``DPKG_ROOT`` with the system tools they call replaced by recording stubs.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyirqbalance
from tests.hermetic import DEFAULTS_CONFIG, pyirqbalance_argv

REPO = Path(__file__).resolve().parents[2]
VERSION = pyirqbalance.__version__
DEB = f"pyirqbalance_{VERSION}_all.deb"
#: What the package depends on: Debian's own packages of pyirqbalance's requirements.
DEBIAN_DEPENDS = {"python3-yaml", "python3-psutil", "python3-flask", "python3-waitress",
                  "python3-prometheus-client", "python3-xxhash", "python3-systemd"}
SYSTEM_PYTHON = "/usr/bin/python3"
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: Copies of a checkout that are not part of it.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".hypothesis", ".pybuild")


def run(*argv: str | Path, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def test_changelog_version_is_the_package_version():
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert re.match(rf"^pyirqbalance \({re.escape(VERSION)}\) ", first), first
    assert (REPO / "debian" / "source" / "format").read_text().strip() == "3.0 (native)"


def copy_source(dest: Path) -> None:
    """The files a clone has: git's tracked (and not ignored new) files, else the tree."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = run("git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                  "--exclude-standard")
        assert out.returncode == 0, out.stderr
        for rel in filter(None, out.stdout.split("\0")):
            src = REPO / rel
            if not src.exists() and not src.is_symlink():
                continue  # deleted in the work tree
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dest / rel)
            else:
                shutil.copy2(src, dest / rel)
    else:
        shutil.copytree(REPO, dest, symlinks=True, ignore=NOT_SOURCE, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The directory holding the .deb built by ``dpkg-buildpackage -us -uc -b``."""
    if shutil.which("dpkg-buildpackage") is None or shutil.which("dpkg-checkbuilddeps") is None:
        pytest.skip("dpkg-buildpackage is not installed (.ci/run installs it)")
    top = tmp_path_factory.mktemp("deb")
    src = top / "pyirqbalance"
    src.mkdir()
    copy_source(src)
    env = {"PATH": CLEAN_PATH, "HOME": str(top), "LANG": "C.UTF-8"}
    deps = run("dpkg-checkbuilddeps", cwd=src, env=env)
    if deps.returncode != 0:
        pytest.skip(f"build dependencies missing (.ci/run installs them): {deps.stderr.strip()}")
    # Generous deadline; the build itself takes about 15 s on two busy cores.
    out = run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (top / DEB).is_file(), sorted(p.name for p in top.iterdir())
    return top


@pytest.fixture(scope="module")
def deb(built) -> Path:
    return built / DEB


@pytest.fixture(scope="module")
def contents(deb) -> dict[str, str]:
    """Path in the package -> the dpkg-deb -c line (symlinks show their target)."""
    out = run("dpkg-deb", "-c", deb)
    assert out.returncode == 0, out.stderr
    files = {}
    for line in out.stdout.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        files[name.removeprefix(".")] = line
    return files


@pytest.fixture(scope="module")
def extracted(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("extracted")
    out = run("dpkg-deb", "-x", deb, root)
    assert out.returncode == 0, out.stderr
    return root


@pytest.fixture(scope="module")
def control(deb, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("control")
    out = run("dpkg-deb", "-e", deb, root)
    assert out.returncode == 0, out.stderr
    return root


def test_lintian_reports_no_error_and_only_documented_warnings(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (.ci/run installs it)")
    out = run("lintian", "--pedantic", deb, timeout=300, env={"PATH": CLEAN_PATH,
                                                               "LANG": "C.UTF-8"})
    tags = re.findall(r"^([EWIPX]): pyirqbalance: (\S+)", out.stdout, re.M)
    assert [t for t in tags if t[0] == "E"] == [], out.stdout
    documented = (REPO / "docs" / "packaging.md").read_text()
    for level, tag in tags:
        assert f"`{tag}`" in documented, f"{level}: {tag} is neither fixed nor documented"


def test_package_lists_scripts_unit_conffiles_manpages_and_completion(contents):
    for path in ("/usr/bin/pyirqbalance", "/usr/bin/pyirqbalancectl",
                 "/lib/systemd/system/pyirqbalance.service",
                 "/etc/pyirqbalance/pyirqbalance.yaml", "/etc/default/pyirqbalance",
                 "/usr/share/man/man8/pyirqbalance.8.gz",
                 "/usr/share/man/man1/pyirqbalancectl.1.gz",
                 "/usr/share/man/man5/pyirqbalance.yaml.5.gz",
                 "/usr/share/bash-completion/completions/pyirqbalance",
                 "/usr/share/bash-completion/completions/pyirqbalancectl",
                 "/usr/lib/python3/dist-packages/pyirqbalance/service/cli.py",
                 "/etc/init.d/pyirqbalance"):
        assert path in contents, path
    assert contents["/usr/bin/pyirqbalance"].startswith("-rwxr-xr-x root/root")
    assert contents["/etc/init.d/pyirqbalance"].startswith("-rwxr-xr-x root/root")
    assert " -> pyirqbalance" in contents["/usr/share/bash-completion/completions/pyirqbalancectl"]
    # Everything the daemon creates at run time is made by systemd or by the daemon itself.
    assert not any(p.startswith(("/var/", "/run/")) for p in contents)


def test_package_ships_the_monitoring_mixin(contents, extracted):
    """Alerts, recording rules, their unit tests and the dashboard, as in monitoring/."""
    share = "/usr/share/pyirqbalance/monitoring"
    tracked = [p for p in (REPO / "monitoring").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert tracked
    for src in tracked:
        rel = src.relative_to(REPO / "monitoring")
        assert f"{share}/{rel}" in contents, f"{rel} is not in the package"
        assert (extracted / share.lstrip("/") / rel).read_bytes() == src.read_bytes()


def test_conffiles_and_dependencies(deb, control):
    conffiles = (control / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/etc/default/pyirqbalance", "/etc/init.d/pyirqbalance",
                                 "/etc/pyirqbalance/pyirqbalance.yaml"]
    depends = run("dpkg-deb", "-f", deb, "Depends").stdout
    names = {d.strip().split()[0] for d in depends.split(",")}
    assert names >= DEBIAN_DEPENDS
    assert names - DEBIAN_DEPENDS <= {"python3:any"}, "a dependency outside Debian's list"
    # pip requirement versions are not copied over: bookworm has Flask 2.2, waitress 2.1
    assert not re.search(r"python3-(flask|waitress|prometheus-client) \(", depends), depends


def test_apt_can_install_it(deb):
    """Every dependency resolves in this machine's archive (a simulation changes nothing)."""
    if shutil.which("apt-get") is None or not list(Path("/var/lib/apt/lists").glob("*_Packages*")):
        pytest.skip("no apt package lists")
    out = run("apt-get", "-s", "-o", "Debug::NoLocking=1", "install", f"./{deb.name}",
              cwd=deb.parent, env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(rf"^Inst pyirqbalance .*{re.escape(VERSION)}", out.stdout, re.M), out.stdout


def test_init_script_is_the_repository_script(extracted):
    script = (extracted / "etc/init.d/pyirqbalance").read_bytes()
    assert script == (REPO / "sysvinit" / "pyirqbalance").read_bytes()


#: Where the installed documents' relative links lead (README.md -> docs/api.md ...).
DOC = "usr/share/doc/pyirqbalance"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_documents_the_installed_text_points_to_are_installed(extracted):
    """Every relative link of the installed README.md and docs/*.md leads to an installed
    file, and every docs/ path the manual pages and --help name is installed."""
    doc = extracted / DOC
    texts = [doc / "README.md", *sorted((doc / "docs").glob("*.md"))]
    assert (doc / "docs" / "README.md").is_file() and len(texts) > 5
    for text in texts:
        for target in LINK.findall(text.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (text.parent / target).exists(), f"{text.relative_to(doc)} -> {target}"
    doc_path = re.compile(r"docs/[\w.-]+\.md")
    named = set(doc_path.findall((REPO / "pyirqbalance/service/cli.py").read_text()))
    for page in (extracted / "usr/share/man").rglob("*.gz"):
        named |= set(doc_path.findall(gzip.decompress(page.read_bytes()).decode()))
    assert "docs/placement.md" in named
    for name in named:
        assert (doc / name).is_file(), name


def test_unit_is_the_repository_unit(extracted):
    unit = (extracted / "lib/systemd/system/pyirqbalance.service").read_text()
    assert unit == (REPO / "systemd" / "pyirqbalance.service").read_text()
    assert "ExecStart=/usr/bin/pyirqbalance " in unit


# --------------------------------------------------------------------------
# the Python code with nothing but the declared dependencies
# --------------------------------------------------------------------------


def installed(package: str) -> bool:
    out = run("dpkg-query", "-W", "-f=${db:Status-Status}", package)
    return out.returncode == 0 and out.stdout == "installed"


def dependency_closure(packages: set[str]) -> set[str]:
    """The installed packages that ``packages`` bring, themselves included.

    Recommends count: apt installs them by default (python3-flask recommends
    python3-blinker, which Flask imports when present).
    """
    seen: set[str] = set()
    todo = [p for p in packages if installed(p)]
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        out = run("dpkg-query", "-W", "-f=${Depends},${Pre-Depends},${Recommends}", pkg)
        for alt in re.split(r"[,|]", out.stdout):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name and name not in seen and installed(name):
                todo.append(name)
    return seen


@pytest.fixture(scope="module")
def system_python():
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no Debian python3")
    missing = sorted(p for p in DEBIAN_DEPENDS if not installed(p))
    if missing:
        pytest.skip(f"declared dependencies not installed (.ci/run installs them): {missing}")
    return SYSTEM_PYTHON


def package_python(extracted: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """``code`` run by Debian's python3 with only the extracted package and system paths.

    ``-I -S``: no user site, no environment, no site-packages; sys.path is the
    standard library, the package's own directory and Debian's dist-packages.
    """
    site = extracted / "usr/lib/python3/dist-packages"
    prelude = (f"import sys; sys.path[:0] = [{str(site)!r}, '/usr/lib/python3/dist-packages']; "
               f"sys.argv[1:] = {list(args)!r}\n")
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"}
    return run(SYSTEM_PYTHON, "-I", "-S", "-c", prelude + code, timeout=120, env=env)


def third_party_imports(package: Path) -> list[str]:
    """Every module outside the standard library and pyirqbalance that the code imports.

    ``import``/``from`` statements wherever they are, and ``importlib.import_module``
    with a literal name.
    """
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                if node.module == "systemd":  # a package of extension modules
                    names |= {f"systemd.{a.name}" for a in node.names}
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant)):
                names.add(str(node.args[0].value))
    return sorted(n for n in names if n.split(".")[0] not in sys.stdlib_module_names
                  and n.split(".")[0] not in ("pyirqbalance", "__future__"))


def test_every_module_imports_with_the_declared_dependencies_only(system_python, extracted,
                                                                  contents):
    site = "/usr/lib/python3/dist-packages/"
    modules = sorted(
        p.removeprefix(site).removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for p in contents
        if p.startswith(site + "pyirqbalance/") and p.endswith(".py")
        and not p.endswith("/__main__.py")  # runs the daemon
    )
    assert "pyirqbalance.service.cli" in modules and "pyirqbalance.api.server" in modules
    # what the code imports where it is used (yaml, xxhash, systemd.journal) as well
    lazy = third_party_imports(extracted / site.lstrip("/") / "pyirqbalance")
    assert {"yaml", "xxhash", "flask", "waitress.server", "prometheus_client",
            "systemd.journal"} <= set(lazy)
    code = (
        "import importlib, json\n"
        f"for m in {modules + lazy!r}: importlib.import_module(m)\n"
        "files = sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())})\n"
        "print(json.dumps(files))\n"
    )
    out = package_python(extracted, code)
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)
    ours = [f for f in files if f.startswith(str(extracted))]
    assert len(ours) >= len(modules)
    foreign = [f for f in files if f.startswith("/usr/lib/python3/dist-packages/")]
    assert any("/flask/" in f for f in foreign)
    owners = set()
    for f in foreign:
        out = run("dpkg", "-S", f)
        assert out.returncode == 0, f"{f} belongs to no Debian package"
        owners |= {o.strip() for o in out.stdout.split(":", 1)[0].split(",")}
    allowed = dependency_closure(DEBIAN_DEPENDS)
    assert owners <= allowed, f"imported from undeclared packages: {sorted(owners - allowed)}"


def run_script(extracted: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    script = extracted / "usr/bin" / name
    assert script.read_text().startswith("#!/usr/bin/python3")
    code = f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')\n"
    return package_python(extracted, code, *args)


def test_installed_commands_run_on_debian_versions(system_python, extracted, fake_machine):
    out = run_script(extracted, "pyirqbalance", "--version")
    assert out.returncode == 0 and out.stdout.startswith(f"pyirqbalance version {VERSION}")
    root, _ = fake_machine("a_desktop4")
    before = {p: p.read_bytes() for p in Path(root.base).rglob("smp_affinity")}
    # with the shipped configuration file (read with bookworm's PyYAML)
    config = f"--config={extracted}/etc/pyirqbalance/pyirqbalance.yaml"
    out = run_script(extracted, "pyirqbalance", "--oneshot", "--dry-run", "--format=json",
                     f"--sysroot={root.base}", config)
    assert out.returncode == 0, out.stderr
    packaged = json.loads(out.stdout)
    # the same decisions as the source tree under test makes
    source = run(*pyirqbalance_argv(), "--oneshot", "--dry-run",
                 "--format=json", f"--sysroot={root.base}", config, cwd=REPO)
    assert source.returncode == 0, source.stderr
    targets = {i["irq"]: i["target_mask"] for i in json.loads(source.stdout)["irqs"]}
    assert len(targets) > 10
    assert {i["irq"]: i["target_mask"] for i in packaged["irqs"]} == targets
    assert {p: p.read_bytes() for p in before} == before
    # the Flask application of pyirqbalancectl, run in-process on bookworm's Flask
    out = run_script(extracted, "pyirqbalancectl", f"--config={DEFAULTS_CONFIG}", "--local",
                     "--sysroot", str(root.base), "--json", "distribution")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)


# --------------------------------------------------------------------------
# maintainer scripts, against a temporary DPKG_ROOT and stubbed system tools
# --------------------------------------------------------------------------

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
case "$(basename "$0") $*" in
{cases}
esac
exit 0
"""


def stubs(tmp_path: Path, irqbalance_enabled: bool, irqbalance_running: bool) -> tuple[Path, Path]:
    """A PATH directory replacing every system tool the scripts call; the call log."""
    bin_dir, log = tmp_path / "stubs", tmp_path / "calls.log"
    bin_dir.mkdir()
    log.write_text("")
    enabled, running = int(not irqbalance_enabled), int(not irqbalance_running)
    answers = {
        "deb-systemd-helper": f"*is-enabled*irqbalance.service*) exit {enabled};;\n"
                              "*debian-installed*|*was-enabled*) exit 1;;",
        "pidof": f"*) exit {running};;",
    }
    for tool in ("deb-systemd-helper", "deb-systemd-invoke", "systemctl", "pidof",
                 "py3compile", "pypy3compile", "py3clean", "update-rc.d", "invoke-rc.d"):
        path = bin_dir / tool
        path.write_text(STUB.format(log=log, cases=answers.get(tool, "")))
        path.chmod(0o755)
    return bin_dir, log


def maintainer_script(control: Path, name: str, tmp_path: Path, bin_dir: Path,
                      *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{bin_dir}:{CLEAN_PATH}", "DPKG_ROOT": str(tmp_path / "root"),
           "LANG": "C.UTF-8"}
    return run("sh", control / name, *args, env=env)


@pytest.mark.parametrize("enabled,running", [(True, False), (False, True), (True, True)])
def test_first_install_leaves_the_service_alone_while_irqbalance_is_in_charge(
        control, tmp_path, enabled, running):
    bin_dir, log = stubs(tmp_path, enabled, running)
    out = maintainer_script(control, "postinst", tmp_path, bin_dir, "configure")
    assert out.returncode == 0, out.stderr
    calls = log.read_text()
    assert "enable pyirqbalance.service" not in calls
    assert "start" not in calls
    assert "systemctl disable --now irqbalance" in out.stderr
    assert "systemctl enable --now pyirqbalance" in out.stderr


def test_first_install_enables_the_service_without_irqbalance(control, tmp_path):
    bin_dir, log = stubs(tmp_path, irqbalance_enabled=False, irqbalance_running=False)
    out = maintainer_script(control, "postinst", tmp_path, bin_dir, "configure")
    assert out.returncode == 0, out.stderr
    assert "deb-systemd-helper enable pyirqbalance.service" in log.read_text().splitlines()
    assert "irqbalance" not in out.stderr


def test_upgrade_does_not_enable_on_its_own(control, tmp_path):
    bin_dir, log = stubs(tmp_path, irqbalance_enabled=False, irqbalance_running=False)
    out = maintainer_script(control, "postinst", tmp_path, bin_dir, "configure", "0.0.9")
    assert out.returncode == 0, out.stderr
    assert "enable pyirqbalance.service" not in log.read_text()


def test_purge_removes_only_what_pyirqbalance_created(control, tmp_path):
    root = tmp_path / "root"
    ours = [root / "var/lib/pyirqbalance/original-affinity.json",
            root / "var/lib/pyirqbalance/history.sqlite",
            root / "var/lib/pyirqbalance/history.sqlite-wal",
            root / "run/irqbalance/pyirqbalance.lock"]
    theirs = [root / "run/irqbalance/irqbalance1234.sock",
              root / "etc/default/irqbalance",
              root / "var/lib/irqbalance/state",
              root / "usr/sbin/irqbalance"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    bin_dir, log = stubs(tmp_path, irqbalance_enabled=True, irqbalance_running=True)
    out = maintainer_script(control, "postrm", tmp_path, bin_dir, "purge")
    assert out.returncode == 0, out.stderr
    assert [p for p in ours if p.exists()] == []
    assert not (root / "var/lib/pyirqbalance").exists()
    assert [p for p in theirs if not p.exists()] == []
    assert (root / "run/irqbalance").is_dir()
    assert "deb-systemd-helper purge pyirqbalance.service" in log.read_text()


def test_remove_keeps_state_for_a_reinstall(control, tmp_path):
    state = tmp_path / "root/var/lib/pyirqbalance/original-affinity.json"
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    bin_dir, _ = stubs(tmp_path, irqbalance_enabled=False, irqbalance_running=False)
    out = maintainer_script(control, "postrm", tmp_path, bin_dir, "remove")
    assert out.returncode == 0, out.stderr
    assert state.read_text() == "{}"
