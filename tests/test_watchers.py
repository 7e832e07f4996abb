"""collector.watchers: one lock per (namespace, interface), made without following what is planted."""

from __future__ import annotations

import os

import pytest

from collector.errors import CollectorError
from collector.watchers import WatchLock, netns_inode


@pytest.fixture
def lock_dir(tmp_path):
    return str(tmp_path / "locks")


def test_a_second_lock_on_the_same_interface_names_the_holder(lock_dir):
    first = WatchLock("eth7", None, lock_dir)
    with pytest.raises(CollectorError, match=rf"eth7 is already watched by addaddr run \(pid {os.getpid()}\)"):
        WatchLock("eth7", None, lock_dir)
    other = WatchLock("eth8", None, lock_dir)  # another interface: its own lock
    first.close()
    WatchLock("eth7", None, lock_dir).close()  # free again once its holder let go
    other.close()


def test_the_lock_file_is_named_for_the_namespace_inode(lock_dir):
    WatchLock("eth7", None, lock_dir).close()
    assert os.listdir(lock_dir) == [f"net{netns_inode(None)}-eth7.lock"]
    assert oct(os.stat(lock_dir).st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("plant, says", [(os.symlink, "cannot lock eth7"), (os.link, "not a lock file addaddr made")],
                         ids=["symlink", "hard link"])
def test_a_planted_link_is_not_written_through(plant, says, lock_dir, tmp_path):
    os.mkdir(lock_dir, 0o700)
    target = tmp_path / "precious"
    target.write_text("keep me")
    plant(target, os.path.join(lock_dir, f"net{netns_inode(None)}-eth7.lock"))
    with pytest.raises(CollectorError, match=says):
        WatchLock("eth7", None, lock_dir)
    assert target.read_text() == "keep me"


def test_a_lock_dir_others_may_write_is_refused(lock_dir):
    os.mkdir(lock_dir)
    os.chmod(lock_dir, 0o777)
    with pytest.raises(CollectorError, match="writable by others"):
        WatchLock("eth7", None, lock_dir)


def test_a_missing_namespace_is_one_clear_error(lock_dir):
    with pytest.raises(CollectorError, match="no network namespace 'addaddr-no-such-ns'"):
        WatchLock("eth7", "addaddr-no-such-ns", lock_dir)
    assert not os.path.exists(lock_dir)
