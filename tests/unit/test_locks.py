# SPDX-License-Identifier: MIT
"""collector.live.locks: one lock per (namespace, interface), made without following what is planted."""

from __future__ import annotations

import fcntl
import os

import pytest

from collector.errors import CollectorError
from collector.live.locks import WatchLock, netns_inode


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


def test_the_lock_file_is_named_for_the_namespace_inode_and_removed_at_the_end(lock_dir):
    lock = WatchLock("eth7", None, lock_dir)
    assert os.listdir(lock_dir) == [f"net{netns_inode(None)}-eth7.lock"]
    assert oct(os.stat(lock_dir).st_mode & 0o777) == "0o700"
    lock.close()
    assert os.listdir(lock_dir) == [], "got the lock file left: one per interface name ever watched"


def test_a_lock_on_a_file_removed_meanwhile_is_taken_again_on_the_new_one(lock_dir, monkeypatch):
    """Another run's close() removes the file between our open and our flock: our lock would be on a
    file no longer named, and a third run would lock a new one alongside."""
    real_flock = fcntl.flock
    removed = []

    def flock_after_removal(fd, operation):
        if not removed:
            removed.append(os.listdir(lock_dir)[0])
            os.unlink(os.path.join(lock_dir, removed[0]))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_removal)
    first = WatchLock("eth7", None, lock_dir)
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert removed and os.listdir(lock_dir) == removed, f"got {os.listdir(lock_dir)}"
    with pytest.raises(CollectorError, match="already watched"):
        WatchLock("eth7", None, lock_dir)
    first.close()


def test_close_leaves_a_file_it_did_not_lock(lock_dir):
    lock = WatchLock("eth7", None, lock_dir)
    name = os.path.join(lock_dir, os.listdir(lock_dir)[0])
    os.unlink(name)
    with open(name, "w") as other:  # made by another run meanwhile
        other.write("123\n")
    lock.close()
    with open(name) as other:
        assert other.read() == "123\n", "got another run's lock file removed"


@pytest.mark.parametrize(
    "plant, says",
    [(os.symlink, "cannot lock eth7"), (os.link, "not a lock file addaddr made")],
    ids=["symlink", "hard link"],
)
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
