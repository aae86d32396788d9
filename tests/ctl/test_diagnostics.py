"""``v2gctl diagnostics``: the archive's contents with and without a running daemon, and that no
secret reaches it (the files holding secrets are named, never read)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import msgspec
import pytest

from edge.ctl.diagnostics import redacted_config, scrub_text
from edge.ctl.main import main
from edge.daemon.recorder import Dump
from edge.settings.load import default_config_text
from tests.ctl.test_ctl_daemon import bench

PASSWORD = "hunter2-do-not-leak"
KEY = "-----BEGIN PRIVATE KEY-----MIIEdoNotLeak"


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name.split("/", 1)[1]] = f.read()
        return out


def secret_config(tmp_path: Path) -> Path:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    (tmp_path / "client.key").write_text(KEY + "\n")
    text = default_config_text().replace(
        "[mqtt]\n",
        f'[mqtt]\nusername = "edge"\npassword_file = "{tmp_path / "password"}"\n'
        f'key_file = "{tmp_path / "client.key"}"\n',
        1,
    )
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(text)
    return cfg


def test_without_a_daemon_the_archive_holds_the_files_and_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = secret_config(tmp_path)
    out = tmp_path / "diag.tar.gz"
    rc = main(
        [
            "diagnostics",
            "--out",
            str(out),
            "--file",
            str(cfg),
            "--runtime-dir",
            str(tmp_path / "run"),
            "--state-dir",
            str(tmp_path / "state"),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "NO daemon is running" in printed
    got = members(out)
    assert set(got) == {
        "config/v2g-edge.toml",
        "config/problems.txt",
        "config/files.json",
        "versions.json",
        "statistics.json",
        "manifest.json",
    }
    everything = b"".join(got.values())
    assert PASSWORD.encode() not in everything and b"MIIEdoNotLeak" not in everything
    files = json.loads(got["config/files.json"])
    assert files["mqtt.password_file"]["path"] == str(tmp_path / "password")  # the path is kept
    assert files["mqtt.password_file"]["size"] == len(PASSWORD) + 1
    assert files["mqtt.key_file"]["size"] == len(KEY) + 1
    # That file refuses to load (a key without TLS): its problems go in, the rest all the same.
    assert b"mqtt.key_file" in got["config/problems.txt"]
    assert str(tmp_path / "client.key").encode() in got["config/v2g-edge.toml"]
    versions = json.loads(got["versions.json"])
    assert versions["libraries"]["pymodbus"] and versions["libraries"]["aiomqtt"]
    assert set(versions["kernels"]) == {
        "edge.control.lag",
        "edge.control.pq",
        "edge.control.protect",
        "edge.estimation.ecm",
    }
    assert all(k["compiled"] for k in versions["kernels"].values())  # the suite runs the compiled kernels
    notes = json.loads(got["manifest.json"])["notes"]
    assert any("no daemon status" in n for n in notes)
    assert any("no recent cycles" in n for n in notes)
    assert any("no events or sessions" in n for n in notes)


def test_secret_values_are_redacted_comments_dropped_and_a_broken_file_left_out() -> None:
    text = (
        'a = 1\n# password = "old-pw0" (moved to password_file)\n[mqtt]\npassword = "pw1"\n'
        'key_file = "/k"\n[x]\napi_token = { v = "pw2" }\n'
    )
    redacted, n, problem = redacted_config(text)
    assert problem is None and n == 2 and redacted is not None
    assert "pw1" not in redacted and "pw2" not in redacted and "old-pw0" not in redacted
    assert 'key_file = "/k"' in redacted
    # Not TOML: no line-by-line guess (an inline table, a quoted key would slip through): left out.
    broken = 'a = \n[mqtt]\nmqtt = { password = "pw3" }\nhost = "h"\n'
    redacted, n, problem = redacted_config(broken)
    assert redacted is None and problem is not None


def test_text_members_are_scrubbed_of_secret_values() -> None:
    """Error messages and events of older releases may carry a secret typed into the wrong key."""
    text = 'mqtt.password = \'hunter2\': unknown setting\n{"why": "x", "api_token": "t0k", "key_file": "/k"}'
    scrubbed, n = scrub_text(text)
    assert n == 2 and "hunter2" not in scrubbed and "t0k" not in scrubbed and '"key_file": "/k"' in scrubbed


def test_a_password_typed_into_the_config_never_reaches_the_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The likeliest mistake: `password = ...` (only password_file exists): the loader refuses it and
    its error (problems.txt) names the key, not the value; the archive is private (0600)."""
    cfg = tmp_path / "v2g-edge.toml"
    cfg.write_text(default_config_text().replace("[mqtt]\n", '[mqtt]\npassword = "hunter2"\n', 1))
    out = tmp_path / "diag.tar.gz"
    args = ["diagnostics", "--out", str(out), "--file", str(cfg)]
    rc = main([*args, "--runtime-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")])
    assert rc == 0, capsys.readouterr().out
    got = members(out)
    assert b"mqtt.password" in got["config/problems.txt"]
    assert b"hunter2" not in b"".join(got.values())
    assert out.stat().st_mode & 0o077 == 0


def test_an_unwritable_place_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["diagnostics", "--out", str(tmp_path / "nowhere" / "d.tar.gz"), "--runtime-dir", str(tmp_path)]
    )
    assert rc == 1
    assert "no such folder" in capsys.readouterr().err


async def test_with_the_daemon_running_it_holds_its_recent_cycles_events_and_status(tmp_path: Path) -> None:
    async with bench(tmp_path) as b:
        await b.start()
        out = tmp_path / "diag.tar.gz"
        r = await b.ctl(
            "diagnostics", "--out", str(out), "--runtime-dir", str(b.run_dir), "--state-dir", str(b.state_dir)
        )
        assert r.rc == 0, r.out + r.err
        assert "dumped by the daemon" in r.out and "NO daemon" not in r.out
        got = members(out)
        dumps = [name for name in got if name.startswith("cycles/")]
        assert len(dumps) == 1
        dump = msgspec.msgpack.decode(got[dumps[0]], type=Dump)
        assert len(dump.pairs) > 5
        assert not list(b.run_dir.glob("cycles-*.msgpack"))  # made for the archive: not left in /run
        events = json.loads(got["events.json"])
        assert any(e["kind"] == "daemon_start" for e in events)
        stats = json.loads(got["statistics.json"])
        assert stats["daemon_running"] is True and stats["cycles"] > 0
        assert {d["name"] for d in stats["devices"]} == {"inverter", "site_meter"}
        assert json.loads(got["status.json"])["pid"] == b.daemon.proc.pid  # type: ignore[union-attr]
        assert json.loads(got["config/effective.json"])["daemon"]["state_dir"] == str(b.state_dir)
