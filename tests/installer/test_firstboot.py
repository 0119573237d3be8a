"""First boot: /boot/firmware/smartshelf.toml -> /etc/smartshelf/config.toml + the admin's accounts."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from smartshelf.core.config import load_config
from smartshelf.core.errors import ConfigError
from smartshelf.installer.firstboot import apply, parse_firstboot, strip_table

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pw_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("correct horse battery")


def boot_file(tmp_path: Path, text: str) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir(exist_ok=True)
    path = boot / "smartshelf.toml"
    path.write_text(text)
    return path


def good_text(tmp_path: Path, pw_hash: str) -> str:
    return (
        "# written by the installer\n"
        "[shelf]\n"
        'name = "Aisle 3 - skincare"\n'
        f'data_dir = "{tmp_path / "data"}"\n\n'
        "[firstboot]\n"
        'admin_user = "manager"\n'
        f'admin_password_hash = "{pw_hash}"\n\n'
        "[slots]\n"
        "A1 = 17\n"
        "A2 = 27\n"
    )


def test_strip_table_removes_only_that_table() -> None:
    text = '[a]\nx = 1\n[firstboot]\ny = "[b]"\n[b]\nz = 2\n[firstboot.sub]\nq = 1\n'
    assert tomllib.loads(strip_table(text, "firstboot")) == {"a": {"x": 1}, "b": {"z": 2}}


def test_adopts_config_and_password_and_removes_the_file(tmp_path: Path, pw_hash: str) -> None:
    from admin_web.accounts import AccountStore

    path = boot_file(tmp_path, good_text(tmp_path, pw_hash))
    etc = tmp_path / "etc" / "config.toml"
    out = io.StringIO()
    assert apply(path, etc, owner=None, out=out) == 0
    assert not path.exists()
    config = load_config(etc)
    assert config.shelf.name == "Aisle 3 - skincare"
    assert config.slots == {"A1": 17, "A2": 27}
    text = etc.read_text()
    assert "firstboot" not in text.split("\n", 1)[1] and pw_hash not in text
    assert oct(etc.stat().st_mode & 0o777) == "0o644"
    store = AccountStore(tmp_path / "data")
    assert store.check_password("manager", "correct horse battery")
    assert not store.check_password("manager", "wrong password!!")
    # running again finds nothing to do
    out = io.StringIO()
    assert apply(path, etc, owner=None, out=out) == 0
    assert "nothing to do" in out.getvalue()


def test_existing_config_is_backed_up(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "config.toml"
    etc.parent.mkdir()
    etc.write_text('[shelf]\nname = "old"\n')
    path = boot_file(tmp_path, '[shelf]\nname = "new"\n')
    assert apply(path, etc, owner=None, out=io.StringIO()) == 0
    assert load_config(etc).shelf.name == "new"
    backups = list(etc.parent.glob("config.toml.bak-*"))
    assert len(backups) == 1 and 'name = "old"' in backups[0].read_text()


def test_password_hash_replaces_an_existing_user(tmp_path: Path, pw_hash: str) -> None:
    from admin_web.accounts import AccountStore

    store = AccountStore(tmp_path / "data")
    store.set_password("manager", "an old password")
    path = boot_file(tmp_path, good_text(tmp_path, pw_hash))
    assert apply(path, tmp_path / "etc" / "config.toml", owner=None, out=io.StringIO()) == 0
    store = AccountStore(tmp_path / "data")
    assert store.check_password("manager", "correct horse battery")
    assert len(store.db.table("users")) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[camera]\nfps = 0\n", "camera.fps"),
        ("[shelf\n", "not valid TOML"),
        ('[firstboot]\nadmin_password = "plain"\n', "firstboot.admin_password is refused"),
        ('[firstboot]\nadmin_password_hash = "hunter2"\n', "is not a password hash"),
        ('firstboot.admin_user = "x"\n[shelf]\nname = "a"\n', "table of their own"),
        ("[nonsense]\nx = 1\n", "unknown section [nonsense]"),
    ],
)
def test_invalid_file_changes_nothing_and_says_why_on_the_card(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_firstboot(text, Path("smartshelf.toml"))
    path = boot_file(tmp_path, text)
    etc = tmp_path / "etc" / "config.toml"
    out = io.StringIO()
    assert apply(path, etc, owner=None, out=out) == 1
    assert not etc.exists()
    assert not path.exists()
    assert path.with_name("smartshelf.toml.invalid").read_text() == text
    assert message in path.with_name("smartshelf-error.txt").read_text()
    assert not (tmp_path / "data").exists()


def test_file_without_firstboot_table_is_a_plain_config(tmp_path: Path) -> None:
    fb = parse_firstboot('[shelf]\nname = "x"\n', Path("f.toml"))
    assert fb.admin_password_hash is None and fb.admin_user == "admin"
    assert fb.config.shelf.name == "x"


def test_hash_password_cli_makes_a_usable_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smartshelf.cli", "firstboot", "--hash-password"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("admin_password_hash = ")
    fb = parse_firstboot(f"[firstboot]\n{line}\n", Path("f.toml"))
    from werkzeug.security import check_password_hash

    assert fb.admin_password_hash and check_password_hash(fb.admin_password_hash, "correct horse battery")


def test_a_plain_password_points_to_the_hash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_firstboot('[firstboot]\nadmin_password = "hunter22hunter22"\n', tmp_path / "smartshelf.toml")
    message = str(info.value)
    assert "admin_password is refused" in message and "admin_password_hash" in message
    assert "smartshelf firstboot --hash-password" in message and "hunter22" not in message


def test_store_shelf_joins_from_the_first_boot_file(tmp_path: Path) -> None:
    """The first-boot file's [bus] keys plus [firstboot] bus_password: the password goes to its own
    0600 file, never into /etc/smartshelf/config.toml; without a password_file nothing is adopted."""
    pw_file = tmp_path / "etc" / "bus-password"
    text = (
        '[firstboot]\nbus_password = "s3cret-from-pairing"\n\n'
        f'[bus]\nenabled = true\nhost = "hub.invalid"\nshelf = "aisle-2"\nuser = "aisle-2"\npassword_file = "{pw_file}"\n'
    )
    path = tmp_path / "boot" / "smartshelf.toml"
    path.parent.mkdir()
    path.write_text(text)
    etc = tmp_path / "etc" / "config.toml"
    assert apply(path, etc, data_dir=tmp_path / "data", owner=None, out=io.StringIO()) == 0
    assert pw_file.read_text().strip() == "s3cret-from-pairing" and pw_file.stat().st_mode & 0o077 == 0
    assert "s3cret" not in etc.read_text() and "aisle-2" in etc.read_text()
    path.write_text(text.replace(f'password_file = "{pw_file}"\n', ""))
    assert apply(path, tmp_path / "etc2" / "config.toml", owner=None, out=io.StringIO()) == 1
    assert not (tmp_path / "etc2" / "config.toml").exists()
