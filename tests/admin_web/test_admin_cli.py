"""`smartshelf admin ...` commands: set-password (stdin), create-token (stdout), backup/restore."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smartshelf.cli import main
from smartshelf.core.storage import open_db

pytestmark = pytest.mark.integration


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_set_password_reads_stdin_and_login_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from admin_web.accounts import AccountStore

    assert _run(["admin", "set-password", "--data-dir", str(tmp_path)], monkeypatch, "a long passphrase\n") == 0
    store = AccountStore(tmp_path)
    assert store.check_password("admin", "a long passphrase")
    assert not store.check_password("admin", "a long passphrase\n")
    assert "a long passphrase" not in (tmp_path / "accounts.json").read_text()
    assert (tmp_path / "accounts.json").stat().st_mode & 0o777 == 0o600
    # too short: refused with exit 1, old password kept
    assert _run(["admin", "set-password", "--data-dir", str(tmp_path)], monkeypatch, "short\n") == 1
    assert AccountStore(tmp_path).check_password("admin", "a long passphrase")


def test_create_token_prints_only_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from admin_web.accounts import AccountStore

    assert _run(["admin", "create-token", "--data-dir", str(tmp_path), "--name", "pos"], monkeypatch) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert out == token + "\n" and token.startswith("ss_") and len(token) > 40
    assert AccountStore(tmp_path).verify_token(token) == "pos"
    assert token not in (tmp_path / "accounts.json").read_text()
    assert _run(["admin", "create-token", "--data-dir", str(tmp_path), "--name", "pos"], monkeypatch) == 1


def test_backup_and_restore_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from admin_web.repository import InventoryRepository

    data = tmp_path / "data"
    repo = InventoryRepository(data)
    repo.create_product({"sku": "A", "name": "A", "price": 1, "stock": 5})
    assert _run(["admin", "backup", "--data-dir", str(data), "--dest", str(tmp_path / "b")], monkeypatch) == 0
    archive = capsys.readouterr().out.strip()
    assert Path(archive).is_file() and Path(archive).parent == tmp_path / "b"
    repo.restock("A", 10)
    assert _run(["admin", "restore", archive, "--data-dir", str(data)], monkeypatch) == 0
    assert open_db(data / "store.json").table("products").all()[0]["stock"] == 5
    assert repo.get_product("A")["stock"] == 5  # the running repository sees the restored file
    assert _run(["admin", "restore", str(tmp_path / "missing.tar.gz"), "--data-dir", str(data)], monkeypatch) == 1


def test_cli_import_does_not_load_flask() -> None:
    code = "import sys, smartshelf.cli; smartshelf.cli.build_parser(); print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_concurrent_cli_writer_and_server_do_not_lose_updates(tmp_path: Path) -> None:
    """A CLI process creating tokens while the server's store writes settings: both survive."""
    from admin_web.accounts import AccountStore

    server_side = AccountStore(tmp_path)
    script = (
        "import sys; from admin_web.accounts import AccountStore; s = AccountStore(sys.argv[1])\n"
        "for i in range(30): s.create_token(f'cli-{i}')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    for i in range(30):
        server_side.set_setting(f"k{i}", i)
    assert proc.wait(60) == 0
    fresh = AccountStore(tmp_path)
    assert len(fresh.list_tokens()) == 30
    assert all(fresh.get_setting(f"k{i}") == i for i in range(30))


def test_app_reads_smartshelf_config(tmp_path: Path) -> None:
    from admin_web import create_app

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[shelf]\nname = "Aisle 7"\ndata_dir = "{tmp_path / "d"}"\n'
                   '[admin]\ndevice_url = "http://127.0.0.1:9999"\n')
    app: Any = create_app({"SMARTSHELF_CONFIG": str(cfg)})
    assert app.config["DATA_DIR"] == str(tmp_path / "d") and app.config["SHELF_NAME"] == "Aisle 7"
    assert app.config["DEVICE_URL"] == "http://127.0.0.1:9999"


def test_app_start_recovers_or_refuses_a_corrupt_store(tmp_path: Path) -> None:
    from admin_web import create_app
    from admin_web.repository import InventoryRepository
    from smartshelf.core.errors import StorageError

    repo = InventoryRepository(tmp_path)
    repo.create_product({"sku": "A", "name": "A", "price": 1, "stock": 1})
    repo.create_product({"sku": "B", "name": "B", "price": 1, "stock": 1})
    (tmp_path / "store.json").write_bytes(b'{"products": {"1": ')  # a bad sector
    app: Any = create_app({"DATA_DIR": str(tmp_path), "DEVICE_URL": "http://127.0.0.1:9"})
    with app.app_context():
        from admin_web.db import get_repository

        assert [p["sku"] for p in get_repository().list_products()] == ["A"]  # the last good copy
    assert any(p.name.startswith("store.json.corrupt-") for p in tmp_path.iterdir())

    (tmp_path / "store.json").write_bytes(b"garbage")
    (tmp_path / "store.json.bak").unlink()
    with pytest.raises(StorageError, match="smartshelf admin restore"):
        create_app({"DATA_DIR": str(tmp_path), "DEVICE_URL": "http://127.0.0.1:9"})


def test_serve_action_and_options_parse() -> None:
    from smartshelf.cli import build_parser

    parser = build_parser()
    for argv in (["admin", "serve", "--config", "/c.toml", "--port", "9000"], ["admin", "--port", "9000"]):
        args = parser.parse_args(argv)
        assert args.func.__name__ == "serve" and args.port == 9000 and args.threads == 8


def test_set_password_hash_from_firstboot(tmp_path: Path) -> None:
    from werkzeug.security import generate_password_hash

    from admin_web.accounts import AccountStore
    from admin_web.errors import ValidationError

    store = AccountStore(tmp_path)
    store.set_password_hash("admin", generate_password_hash("from the sd card"))
    assert store.check_password("admin", "from the sd card")
    with pytest.raises(ValidationError, match="password_hash"):
        store.set_password_hash("admin", "plain text")
    store.close()


@pytest.mark.integration
def test_a_taken_port_is_one_line_and_no_false_address(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "smartshelf.cli", "admin", "--data-dir", str(tmp_path), "--host", "127.0.0.1",
             "--port", str(port)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"smartshelf: error: the admin page cannot listen on 127.0.0.1:{port}: the port is already in use" \
        in result.stderr and "choose another port with --port" in result.stderr
    assert "admin page on http://" not in result.stderr, "no address announced that does not work"
